package diskcache

import "syscall"

// Buffer returns n bytes of fresh memory, for Load to read an entry into
// when its payload is copied out again (as wasmtime does when it
// deserializes), and the function that releases it; nothing may use the
// memory afterwards. On Linux the memory is mapped with every page set up
// at once: a fresh slice of the Go heap of that size is faulted in page by
// page, which costs about twice as much on the machine of
// docs/benchmarks.md (about 50 ms against 21 ms to read 12 MB into it).
func Buffer(n int) ([]byte, func()) {
	if n == 0 {
		return nil, func() {}
	}
	b, err := syscall.Mmap(-1, 0, n, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_PRIVATE|syscall.MAP_ANON|syscall.MAP_POPULATE)
	if err != nil {
		return make([]byte, n), func() {}
	}
	return b, func() { syscall.Munmap(b) }
}
