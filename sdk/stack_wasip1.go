//go:build wasip1

package sdk

// A block's steps run on its main goroutine: a reactor's blockhost_run is
// called on it (the toolchain pauses main there once initialisation is
// done), as a command's main runs on it. Go starts that goroutine on a
// stack of a few KiB and doubles it when a call needs more, copying it and
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
// and nothing a step's result depends on. A garbage collection later in
// initialisation halves the stack each time, since main then uses far
// under a quarter of it (how Go decides to shrink): a block whose own
// init collects garbage keeps less of the gain, and none after three.
//
// Three quarters of stackReserve, growStack's frame, must stay under the
// compiler's largest stack variable (128 KiB): a larger array would be put
// on the heap, and the stack would not grow at all.
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
