//go:build cgo && !linux

package wasmtime

import "github.com/bytecodealliance/wasmtime-go/v39"

// Elsewhere than Linux wasmtime's pooling allocator makes every memory
// (memory.go has the Linux design).
const memoryCreator = false

func useMemoryCreator(*wasmtime.Config) {}

type memImage struct{}

func newMemImage([]byte) (*memImage, error) { return nil, nil }

func pageSizeC() int { return 0 }

func tuneMemoryC(int, int) {}

func (im *memImage) close() {}

func (im *memImage) instantiate(l *wasmtime.Linker, store *wasmtime.Store, mod *wasmtime.Module) (*wasmtime.Instance, error) {
	return l.Instantiate(store, mod)
}
