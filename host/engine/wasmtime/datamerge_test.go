//go:build cgo

package wasmtime

import (
	"bytes"
	"testing"

	"github.com/bytecodealliance/wasmtime-go/v39"

	"github.com/blockhost/blockhost/host/engine/internal/wasmbin"
)

// memoryAfterInstantiation instantiates wasm on a plain wasmtime engine
// and returns its memory "memory", or the instantiation error.
func memoryAfterInstantiation(t *testing.T, wasm []byte) ([]byte, error) {
	t.Helper()
	eng := wasmtime.NewEngine()
	defer eng.Close()
	mod, err := wasmtime.NewModule(eng, wasm)
	if err != nil {
		t.Fatalf("compile: %v", err)
	}
	defer mod.Close()
	store := wasmtime.NewStore(eng)
	defer store.Close()
	inst, err := wasmtime.NewInstance(store, mod, nil)
	if err != nil {
		return nil, err
	}
	return bytes.Clone(inst.GetExport(store, "memory").Memory().UnsafeData(store)), nil
}

func wat(t *testing.T, src string) []byte {
	t.Helper()
	wasm, err := wasmtime.Wat2Wasm(src)
	if err != nil {
		t.Fatal(err)
	}
	return wasm
}

func TestMergeDataKeepsMemory(t *testing.T) {
	// Out of order, with small gaps (merged) and one gap wider than
	// mergeGap (kept apart).
	wasm := wat(t, `(module (memory (export "memory") 2)
		(data (i32.const 20) "cd")
		(data (i32.const 16) "ab")
		(data (i32.const 30) "\01\02\03")
		(data (i32.const 9000) "far")
		(data (i32.const 9003) "ther"))`)
	merged, ok := mergeData(wasm)
	if !ok {
		t.Fatal("mergeData left a mergeable module unchanged")
	}
	m, err := wasmbin.Parse(merged)
	if err != nil {
		t.Fatal(err)
	}
	if segs, err := wasmbin.ReadVec(m.Sections[m.Index(wasmbin.SectionData)], (*wasmbin.Reader).Data); err != nil || len(segs) != 2 {
		t.Fatalf("merged data section has %d segments (%v), want 2", len(segs), err)
	}
	want, err := memoryAfterInstantiation(t, wasm)
	if err != nil {
		t.Fatal(err)
	}
	got, err := memoryAfterInstantiation(t, merged)
	if err != nil {
		t.Fatalf("merged module does not instantiate: %v", err)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("memory after instantiation differs between the module and its merged form")
	}
}

func TestMergeDataLeavesUnclearModules(t *testing.T) {
	for name, src := range map[string]string{
		"overlap": `(module (memory 1) (data (i32.const 16) "abcd") (data (i32.const 18) "xy") (data (i32.const 24) "z"))`,
		"passive": `(module (memory 1) (data (i32.const 16) "ab") (data (i32.const 20) "cd") (data "p"))`,
		"data count": `(module (memory 1) (data (i32.const 16) "ab") (data (i32.const 20) "cd")
			(func (memory.init 1 (i32.const 0) (i32.const 0) (i32.const 1))))`,
		"global": `(module (global i32 (i32.const 16)) (memory 1) (data (global.get 0) "ab") (data (i32.const 20) "cd"))`,
		"single": `(module (memory 1) (data (i32.const 16) "abcd"))`,
		"none":   `(module (memory 1))`,
	} {
		t.Run(name, func(t *testing.T) {
			wasm := wat(t, src)
			if out, ok := mergeData(wasm); ok || !bytes.Equal(out, wasm) {
				t.Fatalf("mergeData changed the module (ok %v)", ok)
			}
		})
	}
}

func TestMergeDataKeepsOutOfBounds(t *testing.T) {
	// The second segment runs past the one page of memory: the merged
	// module must fail to instantiate as the original does.
	wasm := wat(t, `(module (memory (export "memory") 1)
		(data (i32.const 65000) "x")
		(data (i32.const 65534) "abcd"))`)
	if _, err := memoryAfterInstantiation(t, wasm); err == nil {
		t.Fatal("the original module instantiated; the test needs one that does not")
	}
	merged, ok := mergeData(wasm)
	if !ok {
		t.Fatal("mergeData left the module unchanged")
	}
	if _, err := memoryAfterInstantiation(t, merged); err == nil {
		t.Fatal("the merged module instantiated although a segment is out of bounds")
	}
}

func TestMergeDataMalformed(t *testing.T) {
	for name, wasm := range map[string][]byte{
		"empty":     nil,
		"header":    []byte("\x00asm\x01\x00\x00\x00"),
		"truncated": []byte("\x00asm\x01\x00\x00\x00\x0b\x05\x02\x00\x41"),
	} {
		if out, ok := mergeData(wasm); ok || !bytes.Equal(out, wasm) {
			t.Errorf("%s: mergeData changed a module it cannot read", name)
		}
	}
}
