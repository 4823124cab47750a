//go:build cgo

package wasmtime

// #include <stddef.h>
// #include <stdint.h>
import "C"

import (
	"io"
	"runtime/cgo"
	"syscall"
	"unsafe"
)

// blockhostWasiWrite is the C callback behind a guest's standard output
// and standard error (shim.c's bh_write): it passes the bytes to the run's
// io.Writer. wasmtime calls it from the guest's fd_write, before fd_write
// returns. A writer's error, such as the host's output cap, reaches the
// guest as ENOSPC, and the writer has recorded it for the host.
//
//export blockhostWasiWrite
func blockhostWasiWrite(h C.uintptr_t, p *C.uchar, n C.size_t) (ret C.ptrdiff_t) {
	// A panic must not cross into wasmtime: the guest sees an I/O error.
	defer func() {
		if recover() != nil {
			ret = -C.ptrdiff_t(syscall.EIO)
		}
	}()
	w, ok := cgo.Handle(h).Value().(io.Writer)
	if !ok {
		return -C.ptrdiff_t(syscall.EBADF)
	}
	if n == 0 {
		return 0
	}
	// A view of wasmtime's buffer, valid for this call: io.Writer
	// implementations must not retain it.
	b := unsafe.Slice((*byte)(unsafe.Pointer(p)), int(n))
	written, err := w.Write(b)
	if err != nil && written == 0 {
		return -C.ptrdiff_t(syscall.ENOSPC)
	}
	return C.ptrdiff_t(written)
}
