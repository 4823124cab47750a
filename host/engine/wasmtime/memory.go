//go:build cgo && linux

package wasmtime

// #include <stdlib.h>
// #include "shim.h"
import "C"

import (
	"errors"
	"fmt"
	"runtime"
	"unsafe"

	"github.com/bytecodealliance/wasmtime-go/v39"
)

// Linear memory. wasmtime's pooling allocator, as its C API configures it,
// resets a memory slot between instances by zeroing the whole memory and
// copying the module's data back in (or, with copy-on-write images, by
// dropping every page the image mapped): for a Go block started from its
// snapshot, 5.5 MB of memory traffic per step, of which the step itself
// wrote 49 pages. So the engine makes every linear memory itself
// (memory.c), as the wazero engine does (host/engine/wazero/memory.go):
//
//   - Compile splits the module's data out into an image
//     (datamerge.SplitImage), held in a sealed memory file; the module
//     wasmtime compiles has empty segments;
//   - a memory is address space reserved as wasmtime asks (its
//     reservation and guard region, so that the bounds checks wasmtime's
//     code leaves out stay sound), the image mapped private and
//     copy-on-write at its start, and only its current size accessible;
//   - when the store is deleted, the pages no longer the image file's own
//     (those this run or an earlier one in the range wrote) are found
//     through /proc/self/pagemap, by the kernel's page size (a scan
//     request where the kernel takes one, Linux 6.7 and later; the page
//     map read an entry a page otherwise), and restored from the image
//     (or cleared), everything past the memory's initial size is made
//     inaccessible again, and the range is kept for the
//     module's next instance: at most maxKeptRanges free ranges per module
//     and 256 in the process, the others unmapped, as is a range holding
//     more than 16 MiB to restore;
//   - a range made while the module has more memories alive than it keeps
//     free ranges and than returned runs' stores may wait for deletion (one
//     of a burst's, never kept) is prefaulted: its image
//     mapped read-only, and up to 2 MiB past it faulted in as it becomes
//     accessible, each in one call rather than a fault a page.
//
// Guarantees: a memory handed to an instance holds exactly the image
// followed by zeros, accessible exactly up to its size; no range is reused
// before the store that used it is deleted (the finalizer wasmtime calls
// then is the only place a range is given back).
//
// wasmtime's custom memories come with on-demand instance allocation only,
// so instances and tables are allocated per instantiation; both are small
// next to memory for the blocks this host runs.

// memoryCreator is whether the engine makes linear memories itself.
const memoryCreator = true

// maxKeptRanges is how many free ranges a module keeps between runs, and
// how many of its memories alive at once make its next range a burst's
// (prefaulted, never kept): enough for the steps running on the cores,
// and for the memories of runs that have returned and whose stores wait
// for the closer (retireQueue, and the one it is deleting). Since runs
// that end by themselves hand their store to the closer only when it
// keeps up (retire.go), the stores that wait are mostly interrupted
// runs', which end in waves; before that rule, a batch at concurrency 2
// kept the queue full, and without the margin made a fresh range every 48
// steps (42 in 2,000) and paid its faults: a snapshot hello step took
// 0.33-0.37 ms against 0.22-0.23 ms (wasmtime, loaded machine).
var maxKeptRanges = max(8, 4*runtime.GOMAXPROCS(0)) + retireQueue + 1

func useMemoryCreator(c *wasmtime.Config) {
	C.bh_memory_tune(C.size_t(maxKeptRanges), C.size_t(maxKeptRanges))
	C.bh_malloc_tune()
	C.bh_config_memory(configPtr(c))
}

// memImage is a module's image.
type memImage struct{ p *C.bh_image }

// errNoImage is a module's image the engine could not allocate, or one
// no memory took at instantiation: the module was compiled with its data
// split out, so it must not run without it.
var errNoImage = errors.New("wasmtime: the module's memory image could not be applied")

// newMemImage holds img (possibly empty) for the module's memories.
func newMemImage(img []byte) (*memImage, error) {
	var p *C.bh_image
	if len(img) == 0 {
		p = C.bh_image_new(nil, 0)
	} else {
		p = C.bh_image_new((*C.uint8_t)(unsafe.Pointer(&img[0])), C.size_t(len(img)))
	}
	if p == nil {
		return nil, errNoImage
	}
	return &memImage{p: p}, nil
}

func (im *memImage) close() {
	if im != nil && im.p != nil {
		C.bh_image_close(im.p)
		im.p = nil
	}
}

// instantiate instantiates mod in store with its memory 0 made from im.
// The image is named to memory.c in a thread-local variable, so the
// goroutine stays on its thread from naming it to instantiating. An image
// that no memory took fails the run rather than leave the guest without
// its data.
func (im *memImage) instantiate(l *wasmtime.Linker, store *wasmtime.Store, mod *wasmtime.Module) (*wasmtime.Instance, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	C.bh_image_enter(im.p)
	inst, err := l.Instantiate(store, mod)
	if untaken := bool(C.bh_image_leave()); untaken && err == nil {
		return nil, errNoImage
	}
	return inst, err
}

// pageSizeC is the page size memory.c restores pages by.
func pageSizeC() int { return int(C.bh_page_size()) }

// tuneMemoryC sets how many free ranges a module keeps and from how many
// memories alive its next range is a burst's, for tests.
func tuneMemoryC(kept, burst int) { C.bh_memory_tune(C.size_t(kept), C.size_t(burst)) }

// scanOffC makes resets read the page map an entry a page (off) rather
// than ask the kernel to scan it, or go back to the scan; for tests.
func scanOffC(off bool) { C.bh_scan_off(C.bool(off)) }

// writtenPagesC returns the indexes of the pages of mem a reset would
// restore, found by scan requests (scan) or by reading the page map;
// ok is false when the kernel takes no scan requests. For tests.
func writtenPagesC(mem []byte, scan bool) (pages []int, ok bool, err error) {
	n := len(mem) / pageSizeC()
	if n == 0 {
		return nil, true, nil
	}
	out := make([]C.size_t, n)
	got := C.bh_written_pages((*C.uint8_t)(unsafe.Pointer(&mem[0])), C.size_t(n), C.bool(scan), &out[0], C.size_t(n))
	switch {
	case got == -2:
		return nil, false, nil
	case got < 0:
		return nil, true, errors.New("the page map could not be read")
	case int(got) > n:
		return nil, true, fmt.Errorf("%d pages found written in a memory of %d", got, n)
	}
	for _, p := range out[:got] {
		pages = append(pages, int(p))
	}
	return pages, true, nil
}

// mallocMappedC is how many bytes the C heap holds in chunks mapped on
// their own, or -1 where the C library does not say; for tests.
func mallocMappedC() int64 { return int64(C.bh_malloc_mapped()) }

// mallocHeapC is how many bytes the C heap's arenas hold, or -1 where the
// C library does not say; for tests.
func mallocHeapC() int64 { return int64(C.bh_malloc_heap()) }

// mallocC and freeC allocate and free C heap, for tests.
func mallocC(n int) unsafe.Pointer { return C.malloc(C.size_t(n)) }
func freeC(p unsafe.Pointer)       { C.free(p) }
