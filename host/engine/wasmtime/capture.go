//go:build cgo

package wasmtime

import (
	"math"

	"github.com/bytecodealliance/wasmtime-go/v39"

	"github.com/blockhost/blockhost/host/engine"
)

// instance is what RunConfig.Capture sees of a wasmtime instance.
type instance struct {
	store *wasmtime.Store
	inst  *wasmtime.Instance
}

var _ engine.Instance = instance{}

func (i instance) Memory() []byte {
	ex := i.inst.GetExport(i.store, memoryExport)
	if ex == nil || ex.Memory() == nil {
		return nil
	}
	return ex.Memory().UnsafeData(i.store)
}

func (i instance) Global(name string) (uint64, bool) {
	ex := i.inst.GetExport(i.store, name)
	if ex == nil || ex.Global() == nil {
		return 0, false
	}
	v := ex.Global().Get(i.store)
	switch v.Kind() {
	case wasmtime.KindI32:
		return uint64(uint32(v.I32())), true
	case wasmtime.KindI64:
		return uint64(v.I64()), true
	case wasmtime.KindF32:
		return uint64(math.Float32bits(v.F32())), true
	case wasmtime.KindF64:
		return math.Float64bits(v.F64()), true
	}
	return 0, false
}
