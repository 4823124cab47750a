package populate

import (
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"unsafe"
)

// madvPopulateWrite (Linux 5.14) sets pages up, writable, at once.
const madvPopulateWrite = 23

// hugeFrom is the smallest slice Kept asks huge pages for: below it the
// pages it could save are too few to pay for the rounding.
const hugeFrom = 1 << 20

// Bytes returns a new slice of n bytes whose whole pages are set up,
// writable, in one call, for a file about to be read into it.
func Bytes(n int) []byte {
	b := make([]byte, n)
	if page := os.Getpagesize(); n >= 16*page {
		populateWhole(b, page)
	}
	return b
}

// Kept is Bytes for a slice that is kept for long, such as a module the
// runtime compiles and holds: from hugeFrom bytes on, the slice starts on
// a transparent huge page boundary and its huge pages are advised
// MADV_HUGEPAGE before they are set up, where the kernel offers huge
// pages on request ("madvise" or "always").
//
// On a virtual machine that shadows the guest's page tables, the first
// touch of every 4 KiB page costs microseconds even once the page is set
// up: reading a 3.7 MB module and hashing it took about 18 ms in
// pre-populated pages and 7 ms in huge ones (RATIONALE.md, "Why are
// modules read into huge pages?"). The slice is part of a Go allocation
// of its huge pages and one more, kept alive by the slice as any other;
// only the slice's own huge pages are set up. The advice failing (an
// older kernel, huge pages off) leaves ordinary pages.
//
// A slice soon dropped is better made by Bytes: the Go heap gives the
// freed huge pages back to the kernel in pieces and faults them in again
// a page at a time as it reuses them, which cost a batch of 2,000 steps
// 3,400 page faults more when a snapshot's cache entry was read this way.
func Kept(n int) []byte {
	page := os.Getpagesize()
	huge := hugePageSize()
	if n < hugeFrom || huge <= page {
		return Bytes(n)
	}
	// Room for the slice's huge pages, wherever the allocation starts.
	whole := (n + huge - 1) / huge * huge
	raw := make([]byte, whole+huge)
	start := uintptr(unsafe.Pointer(unsafe.SliceData(raw)))
	off := int((uintptr(huge) - start%uintptr(huge)) % uintptr(huge))
	b := raw[off : off+n : off+n]
	if syscall.Madvise(raw[off:off+whole], syscall.MADV_HUGEPAGE) == nil {
		_ = syscall.Madvise(raw[off:off+whole], madvPopulateWrite)
		return b
	}
	populateWhole(b, page)
	return b
}

// populateWhole sets up the whole pages within b.
func populateWhole(b []byte, page int) {
	start := uintptr(unsafe.Pointer(unsafe.SliceData(b)))
	skip := int((uintptr(page) - start%uintptr(page)) % uintptr(page))
	whole := (len(b) - skip) / page * page
	if whole > 0 {
		_ = syscall.Madvise(b[skip:skip+whole], madvPopulateWrite)
	}
}

// hugePageSize is the size of a transparent huge page, from the kernel,
// or 0 when it does not say (no transparent huge pages).
var hugePageSize = sync.OnceValue(func() int {
	b, err := os.ReadFile("/sys/kernel/mm/transparent_hugepage/hpage_pmd_size")
	if n, err2 := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && err2 == nil && n > 0 && n <= 1<<30 {
		return n
	}
	return 0
})
