//go:build cgo

package wasmtime

import "testing"

// TestEngine_mallocKeepsHeap: once an engine is made, a C allocation of
// the size of a Go module's instance (a few hundred KiB, here 1 MiB) comes
// from the heap, not from a mapping of its own, and the heap keeps its
// pages when it is freed, so that the next step's instance reuses them
// instead of faulting them in again.
func TestEngine_mallocKeepsHeap(t *testing.T) {
	newTestEngine(t)
	mapped, heap := mallocMappedC(), mallocHeapC()
	if mapped < 0 || heap < 0 {
		t.Skip("the C library does not report its heap")
	}
	const size = 1<<20 + 4096
	p := mallocC(size)
	if got := mallocMappedC(); got != mapped {
		t.Errorf("a 1 MiB allocation was mapped on its own (%d bytes mapped, %d before)", got, mapped)
	}
	grown := mallocHeapC()
	freeC(p)
	if got := mallocHeapC(); got < grown {
		t.Errorf("freeing 1 MiB gave the heap back to the kernel: %d bytes, %d before the free", got, grown)
	}
}
