//go:build cgo

package wasmtime

// #include <stdlib.h>
// #include "shim.h"
import "C"

import (
	"errors"
	"fmt"
	"reflect"
	"unsafe"

	"github.com/bytecodealliance/wasmtime-go/v39"
)

// wasmtime-go wraps each C object in a struct whose first field, _ptr, is
// the C pointer, and does not export it. The engine needs the pointers of
// a Config (to choose the pooling allocator) and of a Store (to install its
// epoch callback), so it reads that field. checkLayout verifies, before
// the engine is used, that the structs still have that shape, and
// checkStore that the pointer read from a store is the store's; a
// wasmtime-go upgrade that changes either makes New fail instead of
// misbehave. The same holds for the values an Instance and a Func wrap
// (one field, val, the C API's struct), which a run reads and makes
// directly (export.go).
func checkLayout() error {
	for _, v := range []struct {
		t    reflect.Type
		size uintptr
	}{
		{reflect.TypeFor[wasmtime.Instance](), C.sizeof_bh_instance},
		{reflect.TypeFor[wasmtime.Func](), C.sizeof_bh_func},
		{reflect.TypeFor[wasmtime.Memory](), C.sizeof_bh_memory},
	} {
		if v.t.Kind() != reflect.Struct || v.t.NumField() != 1 || v.t.Field(0).Name != "val" || v.t.Size() != v.size {
			return fmt.Errorf("wasmtime: unexpected layout of %s", v.t)
		}
	}
	for _, t := range []reflect.Type{reflect.TypeFor[wasmtime.Config](), reflect.TypeFor[wasmtime.Store]()} {
		if t.Kind() != reflect.Struct || t.NumField() == 0 {
			return fmt.Errorf("wasmtime: unexpected layout of %s", t)
		}
		f := t.Field(0)
		if f.Name != "_ptr" || f.Offset != 0 || f.Type.Kind() != reflect.Pointer {
			return fmt.Errorf("wasmtime: unexpected layout of %s (first field %s %s)", t, f.Name, f.Type)
		}
	}
	return nil
}

func configPtr(c *wasmtime.Config) *C.wasm_config_t {
	return *(**C.wasm_config_t)(unsafe.Pointer(c))
}

// poolSize sizes the pooling allocator; see wasmtime.go.
type poolSize struct {
	instances, memories, tables        uint32
	memoriesPerModule, tablesPerModule uint32
	warmSlots                          uint32
	maxMemory, tableElements           uint64
	instanceSize                       uint64
	keepMemory, keepTable              uint64
}

// usePooling makes c use the pooling allocator, sized by p.
func usePooling(c *wasmtime.Config, p poolSize) {
	cp := C.bh_pool{
		instances: C.uint32_t(p.instances), memories: C.uint32_t(p.memories), tables: C.uint32_t(p.tables),
		memories_per_module: C.uint32_t(p.memoriesPerModule), tables_per_module: C.uint32_t(p.tablesPerModule),
		warm_slots: C.uint32_t(p.warmSlots),
		max_memory: C.size_t(p.maxMemory), table_elements: C.size_t(p.tableElements), instance_size: C.size_t(p.instanceSize),
		keep_memory: C.size_t(p.keepMemory), keep_table: C.size_t(p.keepTable),
	}
	C.bh_config_pooling(configPtr(c), &cp)
}

// canReserve reports whether size bytes of address space can be reserved.
func canReserve(size uint64) bool { return bool(C.bh_can_reserve(C.size_t(size))) }

func storePtr(s *wasmtime.Store) *C.wasmtime_store_t {
	return *(**C.wasmtime_store_t)(unsafe.Pointer(s))
}

func contextPtr(s wasmtime.Storelike) *C.wasmtime_context_t {
	return (*C.wasmtime_context_t)(unsafe.Pointer(s.Context()))
}

// checkStore verifies on a live store that the pointer read by storePtr is
// the store's: its context is the one wasmtime-go reports.
func checkStore(s *wasmtime.Store) error {
	if C.bh_store_context(storePtr(s)) != contextPtr(s) {
		return errors.New("wasmtime: unexpected layout of wasmtime.Store (context mismatch)")
	}
	return nil
}

// cRun is one run's state shared with C (shim.h's bh_run).
type cRun struct{ p *C.bh_run }

func newCRun() cRun {
	p := C.bh_run_new()
	if p == nil {
		panic("wasmtime: out of memory allocating run state")
	}
	return cRun{p}
}

func (r cRun) free()             { C.bh_run_free(r.p) }
func (r cRun) stop()             { C.bh_run_stop(r.p) }
func (r cRun) interrupted() bool { return C.bh_run_interrupted(r.p) != 0 }

func setupStore(s *wasmtime.Store, r cRun) { C.bh_store_setup(storePtr(s), r.p) }

// wasiConfig builds a WASI configuration in C and hands it to a store.
type wasiConfig struct{ p *C.wasi_config_t }

func newWASIConfig() wasiConfig { return wasiConfig{C.bh_wasi_new()} }

// close frees the configuration unless apply handed it to a store.
func (w *wasiConfig) close() {
	if w.p != nil {
		C.bh_wasi_delete(w.p)
		w.p = nil
	}
}

// cStrings copies ss to C; free releases them.
func cStrings(ss []string) (arr **C.char, free func()) {
	if len(ss) == 0 {
		return nil, func() {}
	}
	size := C.size_t(len(ss)) * C.size_t(unsafe.Sizeof((*C.char)(nil)))
	mem := unsafe.Slice((**C.char)(C.malloc(size)), len(ss))
	for i, s := range ss {
		mem[i] = C.CString(s)
	}
	return &mem[0], func() {
		for _, p := range mem {
			C.free(unsafe.Pointer(p))
		}
		C.free(unsafe.Pointer(&mem[0]))
	}
}

func (w wasiConfig) argv(args []string) error {
	arr, free := cStrings(args)
	defer free()
	if !C.bh_wasi_argv(w.p, C.size_t(len(args)), arr) {
		return errors.New("wasmtime: WASI arguments must be valid UTF-8")
	}
	return nil
}

func (w wasiConfig) env(names, values []string) error {
	n, freeN := cStrings(names)
	defer freeN()
	v, freeV := cStrings(values)
	defer freeV()
	if !C.bh_wasi_env(w.p, C.size_t(len(names)), n, v) {
		return errors.New("wasmtime: WASI environment variables must be valid UTF-8")
	}
	return nil
}

// apply hands the configuration to the store, which owns it from then on.
func (w *wasiConfig) apply(s *wasmtime.Store) error {
	p := w.p
	w.p = nil
	if msg := C.bh_wasi_apply(contextPtr(s), p); msg != nil {
		defer C.free(unsafe.Pointer(msg))
		return fmt.Errorf("wasmtime: WASI configuration: %s", C.GoString(msg))
	}
	return nil
}
