//go:build cgo

package wasmtime

// #include "shim.h"
import "C"

import (
	"unsafe"

	"github.com/bytecodealliance/wasmtime-go/v39"
)

// Exports a run looks up on every step: its entry point, its memory and,
// for a hooked module, the global that records a refused grow. wasmtime-go
// wraps each lookup in an Extern that carries a finalizer, which took 4%
// of a batch's CPU (runtime.addspecial under a lock, and the collector's
// work after it); these lookups go to the C API directly and return plain
// values. checkLayout verifies the shapes they rely on.

// exportFunc returns inst's exported function name, or nil.
func exportFunc(store *wasmtime.Store, inst *wasmtime.Instance, name string) *wasmtime.Func {
	var f C.bh_func
	if !C.bh_export_func(contextPtr(store), instancePtr(inst), cString(name), C.size_t(len(name)), &f) {
		return nil
	}
	fn := new(wasmtime.Func)
	*(*C.bh_func)(unsafe.Pointer(fn)) = f
	return fn
}

// exportMemory returns inst's exported memory name, and whether there is
// one.
func exportMemory(store *wasmtime.Store, inst *wasmtime.Instance, name string) (cMemory, bool) {
	var m cMemory
	ok := C.bh_export_memory(contextPtr(store), instancePtr(inst), cString(name), C.size_t(len(name)), &m.m)
	return m, bool(ok)
}

// exportI64 returns the value of inst's exported i64 global name, and
// whether there is one.
func exportI64(store *wasmtime.Store, inst *wasmtime.Instance, name string) (int64, bool) {
	var v C.int64_t
	ok := C.bh_export_i64(contextPtr(store), instancePtr(inst), cString(name), C.size_t(len(name)), &v)
	return int64(v), bool(ok)
}

// cString is name's bytes for C, which reads them during the call only,
// by length: no copy, and no NUL needed. They hold no Go pointers.
func cString(name string) *C.char { return (*C.char)(unsafe.Pointer(unsafe.StringData(name))) }

func instancePtr(inst *wasmtime.Instance) *C.bh_instance {
	return (*C.bh_instance)(unsafe.Pointer(inst))
}

// cMemory is a memory of a store, as the C API names it.
type cMemory struct{ m C.bh_memory }

// data returns the memory's bytes as they are now (a grow may move them).
func (m *cMemory) data(s wasmtime.Storelike) []byte {
	var size C.size_t
	p := C.bh_memory_view(contextPtr(s), &m.m, &size)
	if size == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(p)), int(size))
}
