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
// runtime compiles and holds: the slice starts on a transparent huge page
// boundary and its huge pages (hugeSpan) are advised MADV_HUGEPAGE before
// they are set up, where the kernel offers huge pages on request
// ("madvise" or "always"); the rest of it is ordinary pages.
//
// On a virtual machine that shadows the guest's page tables, the first
// touch of every 4 KiB page costs microseconds even once the page is set
// up: reading a 3.7 MB module and hashing it took about 18 ms in
// pre-populated pages and 7 ms in huge ones (RATIONALE.md, "Why are
// modules read into huge pages?"). The slice is part of a Go allocation
// one huge page longer than what it spans, kept alive by the slice as any
// other; the extra is address space, not touched.
//
// A slice soon dropped is better made by Bytes: the Go heap gives the
// freed huge pages back to the kernel in pieces and faults them in again
// a page at a time as it reuses them, which cost a batch of 2,000 steps
// 3,400 page faults more when a snapshot's cache entry was read this way.
func Kept(n int) []byte {
	page, huge := os.Getpagesize(), hugePageSize()
	span := hugeSpan(n, huge)
	if span == 0 || huge <= page || !hugePagesOnRequest() {
		return Bytes(n)
	}
	raw := make([]byte, max(n, span)+huge)
	start := uintptr(unsafe.Pointer(unsafe.SliceData(raw)))
	off := int((uintptr(huge) - start%uintptr(huge)) % uintptr(huge))
	b := raw[off : off+n : off+n]
	if syscall.Madvise(raw[off:off+span], syscall.MADV_HUGEPAGE) != nil {
		populateWhole(b, page)
		return b
	}
	_ = syscall.Madvise(raw[off:off+span], madvPopulateWrite)
	if n > span {
		populateWhole(b[span:], page)
	}
	return b
}

// hugeSpan is how much of a slice of n bytes Kept puts in huge pages of
// size huge: n rounded up to a whole huge page when that adds at most a
// quarter of n, else rounded down (0 below one huge page). A 3.7 MB module
// takes two huge pages (13% more); a module of 1 MiB and a bit takes none,
// rather than twice its size.
func hugeSpan(n, huge int) int {
	if huge <= 0 || n <= 0 {
		return 0
	}
	up := (n + huge - 1) / huge * huge
	if up-n <= n/4 {
		return up
	}
	return n / huge * huge
}

// hugePagesOnRequest reports whether the kernel gives transparent huge
// pages to memory advised MADV_HUGEPAGE: its setting is "always" or
// "madvise", not "never".
var hugePagesOnRequest = sync.OnceValue(func() bool {
	b, err := os.ReadFile("/sys/kernel/mm/transparent_hugepage/enabled")
	return err == nil && thpOnRequest(string(b))
})

// thpOnRequest reads the kernel's transparent huge page setting, the
// chosen value in brackets.
func thpOnRequest(setting string) bool {
	return strings.Contains(setting, "[always]") || strings.Contains(setting, "[madvise]")
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
