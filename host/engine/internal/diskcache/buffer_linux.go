package diskcache

import (
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"unsafe"
)

// Buffer returns n bytes of fresh memory, for Load to read an entry into
// when its payload is copied out again (as wasmtime does when it
// deserializes), and the function that releases it; nothing may use the
// memory afterwards.
//
// On Linux the memory is asked for in transparent huge pages, set up
// before it is read into, where the kernel allows it (a region advised
// MADV_HUGEPAGE): first touching fresh memory costs a fault and a
// page-table entry per 4 KiB page, which is most of reading an entry on a
// virtual machine. Reading the 12 MB wasmtime entry of a Go block and
// checking it took about 60 ms into a slice of the Go heap, 40 ms into
// ordinary pre-populated pages and 5 ms into huge pages on the machine of
// docs/benchmarks.md (RATIONALE.md, "Why are cache entries checked through
// a small buffer, or read into huge pages, and not mapped?"). Where huge
// pages are refused the memory is ordinary pages.
func Buffer(n int) ([]byte, func()) {
	if n <= 0 {
		return nil, func() {}
	}
	if n < bufferHugeFrom {
		// A few pages: not worth a huge page set up and cleared.
		return make([]byte, n), func() {}
	}
	huge := hugePageSize()
	size := (n + huge - 1) / huge * huge
	// One huge page more, to align the start on one.
	raw, err := syscall.Mmap(-1, 0, size+huge, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_PRIVATE|syscall.MAP_ANON)
	if err != nil {
		return make([]byte, n), func() {}
	}
	off := 0
	if r := int(uintptr(unsafe.Pointer(&raw[0])) % uintptr(huge)); r != 0 {
		off = huge - r
	}
	b := raw[off : off+size]
	// Both are advice: an older kernel, or one with huge pages off, gives
	// ordinary pages, faulted in as they are read into.
	_ = syscall.Madvise(b, syscall.MADV_HUGEPAGE)
	_ = syscall.Madvise(b, madvPopulateWrite)
	return b[:n], func() { syscall.Munmap(raw) }
}

// bufferHugeFrom is the smallest buffer asked for in huge pages: below it,
// mapping and clearing a whole huge page (about 180 us on the VM of
// docs/benchmarks.md) costs more than the faults it saves.
const bufferHugeFrom = 1 << 20

// madvPopulateWrite (Linux 5.14) sets the pages up, writable, at once.
const madvPopulateWrite = 23

// hugePageSize is the size of a transparent huge page, 2 MiB unless the
// kernel says otherwise.
var hugePageSize = sync.OnceValue(func() int {
	b, err := os.ReadFile("/sys/kernel/mm/transparent_hugepage/hpage_pmd_size")
	if n, err2 := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && err2 == nil && n > 0 && n <= 1<<30 {
		return n
	}
	return 2 << 20
})
