//go:build wasip1

package sdk

// A block's steps run on its main goroutine: a reactor's blockhost_run is
// called on it (the toolchain pauses main there once initialisation is
// done), as a command's main runs on it. Go starts that goroutine on an
// 8 KiB stack and doubles it when a call needs more, copying the stack and
// walking every frame on it each time: decoding and encoding a step's
// JSON takes it to 32 KiB. A block started from a snapshot taken after
// initialisation (docs/abi.md §2.1) starts every step with the stack the
// snapshot holds, so every step paid those copies again: a hello step
// from its snapshot took 0.14-0.15 ms on wasmtime and 0.25-0.27 ms on
// wazero with them, 0.12-0.14 ms and 0.19-0.20 ms without (RATIONALE.md,
// "Why does the Go SDK grow the stack during initialisation?").
//
// So initialisation grows the stack once, to stackReserve, while it is
// still shallow and the copy cheap, and the snapshot keeps it grown. It
// costs the stack's memory, taken from the block's linear memory once,
// and nothing a step can see. The Go runtime may shrink a stack at a
// garbage collection when a goroutine uses under a quarter of it; one
// during the rest of initialisation only gives the copies back.
const stackReserve = 64 << 10

func init() { growStack() }

// growStack needs a frame of three quarters of stackReserve, so the stack
// grows to stackReserve (stacks are powers of two).
//
//go:noinline
func growStack() byte {
	var frame [stackReserve * 3 / 4]byte
	frame[len(frame)-1] = 1
	return lastByte(frame[:])
}

//go:noinline
func lastByte(b []byte) byte { return b[len(b)-1] }
