//go:build cgo && linux

package wasmtime

import (
	"slices"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// TestMemory_writtenPages: the pages a reset restores are exactly those
// no longer the image file's own (written, hence copied) or never backed
// by the file (zero-filled memory past it that was touched), whether the
// kernel scans the page table or the page map is read an entry a page;
// file pages only read, and pages never touched, are left alone.
func TestMemory_writtenPages(t *testing.T) {
	page := pageSizeC()
	const filePages, anonPages = 1400, 40 // more runs of written pages (about 200) than a scan request returns at once (128)
	fd, err := unix.MemfdCreate("blockhost-test-image", unix.MFD_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	if err := unix.Ftruncate(fd, int64(filePages*page)); err != nil {
		t.Fatal(err)
	}
	// One reservation: the file mapped private at its start, as a range
	// holds its image, and anonymous memory after it.
	mem, err := unix.Mmap(-1, 0, (filePages+anonPages)*page, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(mem)
	if _, err := unix.MmapPtr(fd, 0, unsafe.Pointer(&mem[0]), uintptr(filePages*page), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_FIXED); err != nil {
		t.Fatal(err)
	}
	var want []int
	sum := byte(0)
	for i := range filePages + anonPages {
		switch {
		case i%7 == 3, i == 0, i == filePages-1, i == filePages, i >= filePages+anonPages-3:
			mem[i*page+5] = 1 // written: a private copy, or a zero page made anew
			want = append(want, i)
		case i%5 == 1 && i < filePages:
			sum += mem[i*page] // read only: still the file's page
		}
	}
	readSink = sum
	for _, scan := range []bool{true, false} {
		got, ok, err := writtenPagesC(mem, scan)
		if !ok {
			t.Logf("this kernel takes no page map scan requests (Linux 6.7 and later do)")
			continue
		}
		if err != nil {
			t.Fatalf("scan %v: %v", scan, err)
		}
		if !slices.Equal(got, want) {
			t.Errorf("scan %v: pages to restore %v\nwant %v", scan, got, want)
		}
	}
}

// readSink keeps the reads above from being compiled away.
var readSink byte

// TestModule_Run_noResidue_pageMapRead is TestModule_Run_noResidue with
// resets reading the page map an entry a page, as they do where the
// kernel scans none (scanOffC forces it; nothing else turns it back).
func TestModule_Run_noResidue_pageMapRead(t *testing.T) {
	scanOffC(true)
	defer scanOffC(false)
	TestModule_Run_noResidue(t)
}
