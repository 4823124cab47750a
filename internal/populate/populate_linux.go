package populate

import (
	"os"
	"syscall"
	"unsafe"
)

// madvPopulateWrite (Linux 5.14) sets pages up, writable, at once.
const madvPopulateWrite = 23

// Bytes returns a new slice of n bytes whose whole pages are set up,
// writable, in one call, for a file about to be read into it.
func Bytes(n int) []byte {
	b := make([]byte, n)
	page := os.Getpagesize()
	if n < 16*page {
		return b
	}
	start := uintptr(unsafe.Pointer(unsafe.SliceData(b)))
	skip := int((uintptr(page) - start%uintptr(page)) % uintptr(page))
	whole := (n - skip) / page * page
	if whole > 0 {
		_ = syscall.Madvise(b[skip:skip+whole], madvPopulateWrite)
	}
	return b
}
