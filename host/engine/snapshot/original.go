package snapshot

import (
	"fmt"

	"github.com/blockhost/blockhost/abi"
	"github.com/blockhost/blockhost/host/engine"
	"github.com/blockhost/blockhost/host/engine/internal/wasmbin"
)

// Original describes the module a rewritten module came from, from the
// compiled rewritten module and the original's bytes, without compiling
// the original: the host loads a block whose snapshot is in the disk cache
// this way, and compiles the block's own module only when a step needs it
// (one with arguments, environment or directories).
//
// The rewrite keeps imports and exports as they were, less _initialize
// (Rewrite), so the original's imports are the rewritten module's, and its
// exports are the rewritten module's with _initialize put back in its place,
// as a function of no parameters and no results: the only export the host
// accepts under that name (docs/abi.md §2), which the original had when
// its snapshot was taken. MinMemoryPages is read from the original's memory
// section, which the rewrite changed.
//
// It fails when wasm is not a module the rewrite supports, or its exports
// do not match the rewritten module's.
func Original(wasm []byte, rewritten engine.Module) (imports []engine.Import, exports []engine.Export, minPages uint32, err error) {
	m, err := wasmbin.Parse(wasm)
	if err != nil {
		return nil, nil, 0, err
	}
	byName := map[string]engine.Export{}
	for _, ex := range rewritten.Exports() {
		byName[ex.Name] = ex
	}
	var memories int
	for _, s := range m.Sections {
		switch s.ID {
		case wasmbin.SectionMemory:
			mems, err := wasmbin.ReadVec(s, (*wasmbin.Reader).Memory)
			if err != nil {
				return nil, nil, 0, err
			}
			if memories += len(mems); len(mems) == 1 {
				minPages = uint32(mems[0].Min)
			}
		case wasmbin.SectionExport:
			exs, err := wasmbin.ReadVec(s, (*wasmbin.Reader).Export)
			if err != nil {
				return nil, nil, 0, err
			}
			for _, ex := range exs {
				if ex.Name == abi.ExportInitialize && ex.Kind == wasmbin.KindFunc {
					exports = append(exports, engine.Export{Name: ex.Name, Kind: engine.KindFunc})
					continue
				}
				got, ok := byName[ex.Name]
				if !ok || got.Kind != externKind(ex.Kind) {
					return nil, nil, 0, fmt.Errorf("snapshot: export %q is not the rewritten module's", ex.Name)
				}
				exports = append(exports, got)
				delete(byName, ex.Name)
			}
		}
	}
	if memories != 1 || len(byName) != 0 || len(exports) != len(rewritten.Exports())+1 {
		return nil, nil, 0, fmt.Errorf("snapshot: the module does not match its rewritten form")
	}
	return rewritten.Imports(), exports, minPages, nil
}

// externKind maps an encoded export kind to the engine's; a kind the
// engine does not know maps to one no export has.
func externKind(k byte) engine.ExternKind {
	switch k {
	case wasmbin.KindFunc:
		return engine.KindFunc
	case wasmbin.KindMemory:
		return engine.KindMemory
	case wasmbin.KindTable:
		return engine.KindTable
	case wasmbin.KindGlobal:
		return engine.KindGlobal
	}
	return 0xff
}
