// Package residency tells which pages of the process's address space are
// resident, and how, for the engines' tests of their linear memories.
package residency

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"slices"
	"unsafe"
)

// Page is how one page is resident.
type Page uint8

const (
	// Absent is a page not present: never touched, or dropped.
	Absent Page = iota
	// File is a page mapped from a file and never written (for a private
	// mapping, still the file's page, not a copy).
	File
	// Private is any other present page: anonymous memory, or a private
	// copy of a file's page.
	Private
)

// ErrUnavailable is returned where the page map cannot be read.
var ErrUnavailable = errors.New("residency: no /proc/self/pagemap")

// Pages returns how each of the n pages of the kernel's page size from
// addr (aligned down) is resident. Reading the page map touches none of
// them.
func Pages(addr uintptr, n int) ([]Page, error) {
	f, err := os.Open("/proc/self/pagemap")
	if err != nil {
		return nil, errors.Join(ErrUnavailable, err)
	}
	defer f.Close()
	page := uintptr(os.Getpagesize())
	buf := make([]byte, 8*n)
	if _, err := f.ReadAt(buf, int64(addr/page)*8); err != nil {
		return nil, err
	}
	out := make([]Page, n)
	for i := range out {
		e := binary.LittleEndian.Uint64(buf[8*i:])
		switch {
		case e&(1<<63|1<<62) == 0:
			out[i] = Absent
		case e&(1<<61) != 0:
			out[i] = File
		default:
			out[i] = Private
		}
	}
	return out, nil
}

// CheckFresh checks mem, a linear memory that no guest has touched, whose
// image is its first image bytes: its first mapped bytes mapped from the
// image's file and never written, the next prefaulted bytes private, the
// rest absent, and zeros past the image. The error names the first page
// that differs; it wraps ErrUnavailable where the page map cannot be read.
func CheckFresh(mem []byte, image, mapped, prefaulted int) error {
	size := os.Getpagesize()
	pages, err := Pages(uintptr(unsafe.Pointer(unsafe.SliceData(mem))), len(mem)/size)
	if err != nil {
		return err
	}
	for i, p := range pages {
		at := i * size
		want := Absent
		switch {
		case at < mapped:
			want = File
		case at >= image && at < image+prefaulted:
			want = Private
		}
		if p != want {
			return fmt.Errorf("page at %#x of the memory is resident as %d, want %d (image %#x bytes, %#x mapped, %#x prefaulted past it)",
				at, p, want, image, mapped, prefaulted)
		}
	}
	if n := len(mem) - image - bytes.Count(mem[image:], []byte{0}); n != 0 {
		return fmt.Errorf("%d bytes past the image are not zero", n)
	}
	return nil
}

// CheckImage checks pages, those of an image mapped in a memory: each
// mapped from the image's file, except the ones whose indexes written
// lists, which are private copies. The error names the first page that
// differs.
func CheckImage(pages []Page, written ...int) error {
	for i, p := range pages {
		want := File
		if slices.Contains(written, i) {
			want = Private
		}
		if p != want {
			return fmt.Errorf("image page %d is resident as %d, want %d", i, p, want)
		}
	}
	return nil
}
