package wazero

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"testing"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"

	"github.com/blockhost/blockhost/host/engine"
	"github.com/blockhost/blockhost/host/engine/internal/wasmbin"
	"github.com/blockhost/blockhost/internal/testwasm"
)

// testDataSegments counts the data segments of wasm, with the test's own
// reading of the data section (its count).
func testDataSegments(t testing.TB, wasm []byte) int {
	t.Helper()
	secs, err := testSections(wasm)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range secs {
		if s.id == 11 {
			n, k := testULEB(s.content)
			if k == 0 {
				t.Fatal("data section without a count")
			}
			return int(n)
		}
	}
	return 0
}

// initialMemory instantiates wasm on plain wazero, its start functions not
// run and every imported function a no-op, and returns memory 0 as
// instantiation left it.
func initialMemory(t testing.TB, wasm []byte) ([]byte, error) {
	t.Helper()
	ctx := context.Background()
	// The interpreter: compiling a Go module for it takes a fraction of
	// the time, and data segments are the same.
	rt := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfigInterpreter())
	defer rt.Close(ctx)
	wasi_snapshot_preview1.MustInstantiate(ctx, rt)
	cm, err := rt.CompileModule(ctx, wasm)
	if err != nil {
		t.Fatal(err)
	}
	stubs := map[string]wazero.HostModuleBuilder{}
	for _, fd := range cm.ImportedFunctions() {
		mod, name, _ := fd.Import()
		if mod == wasi_snapshot_preview1.ModuleName {
			continue
		}
		if stubs[mod] == nil {
			stubs[mod] = rt.NewHostModuleBuilder(mod)
		}
		stubs[mod].NewFunctionBuilder().
			WithGoModuleFunction(api.GoModuleFunc(func(context.Context, api.Module, []uint64) {}), fd.ParamTypes(), fd.ResultTypes()).
			Export(name)
	}
	for _, b := range stubs {
		if _, err := b.Instantiate(ctx); err != nil {
			t.Fatal(err)
		}
	}
	inst, err := rt.InstantiateModule(ctx, cm, wazero.NewModuleConfig().WithStartFunctions())
	if err != nil {
		return nil, err
	}
	defer inst.Close(ctx)
	mem, ok := inst.Memory().Read(0, inst.Memory().Size())
	if !ok {
		t.Fatal("cannot read memory")
	}
	return bytes.Clone(mem), nil
}

// checkSameMemory checks that in and out initialise memory identically.
func checkSameMemory(t testing.TB, in, out []byte) {
	t.Helper()
	want, err := initialMemory(t, in)
	if err != nil {
		t.Fatalf("original module: %v", err)
	}
	got, err := initialMemory(t, out)
	if err != nil {
		t.Fatalf("merged module: %v", err)
	}
	if !bytes.Equal(got, want) {
		i := 0
		for i < min(len(got), len(want)) && got[i] == want[i] {
			i++
		}
		t.Fatalf("memory differs from offset %d (%d and %d bytes)", i, len(got), len(want))
	}
}

func TestMergeData_goModule(t *testing.T) {
	in := goModule(t).wasm
	orig := bytes.Clone(in)
	out, err := mergeData(in)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(in, orig) {
		t.Fatal("mergeData modified its input")
	}
	before, after := testDataSegments(t, in), testDataSegments(t, out)
	t.Logf("%d data segments merged into %d, %d bytes into %d", before, after, len(in), len(out))
	if before < 1000 || after > 10 {
		t.Errorf("%d data segments merged into %d; want a Go module's thousands into a few", before, after)
	}
	checkSameMemory(t, in, out)
	// Merged segments are more than mergeGap apart: a second pass changes
	// nothing.
	if again, err := mergeData(out); err != nil || !bytes.Equal(again, out) {
		t.Errorf("a second pass changed the module (err %v)", err)
	}
}

func TestMergeData_merges(t *testing.T) {
	in := testwasm.WAT(t, filepath.Join("testdata", "datamerge", "merge.wat"))
	out, err := mergeData(in)
	if err != nil {
		t.Fatal(err)
	}
	// 0 "ab", 10 "cd", 12 "ef" and the empty one at 20 are one segment;
	// "far" at 4000 and "end" at 65533 are more than mergeGap away.
	if n := testDataSegments(t, out); n != 3 {
		t.Errorf("%d segments, want 3", n)
	}
	checkSameMemory(t, in, out)

	// With a data count section (as LLVM writes one), its count follows.
	m, err := wasmbin.Parse(in)
	if err != nil {
		t.Fatal(err)
	}
	if m.Index(wasmbin.SectionDataCount) >= 0 {
		t.Fatal("the fixture has a data count section already")
	}
	m.Insert(wasmbin.Section{ID: wasmbin.SectionDataCount, Content: []byte{6}})
	withCount := m.Encode()
	out, err = mergeData(withCount)
	if err != nil {
		t.Fatal(err)
	}
	m, err = wasmbin.Parse(out)
	if err != nil {
		t.Fatal(err)
	}
	i := m.Index(wasmbin.SectionDataCount)
	if n, _ := testULEB(m.Sections[i].Content); i < 0 || n != 3 {
		t.Errorf("data count section says %d, want 3", n)
	}
	checkSameMemory(t, withCount, out)
}

func TestMergeData_unchanged(t *testing.T) {
	for _, name := range []string{"overlap", "global", "extconst", "passive", "drop", "imported", "multimem"} {
		t.Run(name, func(t *testing.T) {
			in := testwasm.WAT(t, filepath.Join("testdata", "datamerge", name+".wat"))
			out, err := mergeData(in)
			if err != nil {
				t.Fatal(err)
			}
			checkSameSlice(t, in, out)
		})
	}
}

// TestMergeData_outOfBounds: a segment past the end of memory fails
// instantiation, merged or not.
func TestMergeData_outOfBounds(t *testing.T) {
	in := testwasm.WAT(t, filepath.Join("testdata", "datamerge", "outofbounds.wat"))
	out, err := mergeData(in)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := initialMemory(t, in); err == nil {
		t.Fatal("the original module instantiated")
	}
	if _, err := initialMemory(t, out); err == nil {
		t.Fatal("the merged module instantiated")
	}
}

func TestMergeData_malformed(t *testing.T) {
	sec := func(id byte, content string) string { return string(wasmbin.AppendSection(nil, id, []byte(content))) }
	mem := sec(5, "\x01\x00\x01")   // (memory 1)
	seg := "\x00\x41\x00\x0b\x02ab" // (data (i32.const 0) "ab")
	for name, wasm := range map[string]string{
		"no header":                 "\x00asn",
		"data section past the end": header + mem + "\x0b\x10\x02" + seg,
		"count past the end":        header + mem + sec(11, "\x09"+seg),
		"bad flags":                 header + mem + sec(11, "\x02"+seg+"\x07\x00"),
		"offset without end":        header + mem + sec(11, "\x02"+seg+"\x00\x41\x00"),
		"bytes past the segments":   header + mem + sec(11, "\x02"+seg+seg+"\x00"),
		"init past the end":         header + mem + sec(11, "\x02"+seg+"\x00\x41\x00\x0b\x09"),
		"bad memory section":        header + sec(5, "\x01\x00") + sec(11, "\x02"+seg+seg),
	} {
		t.Run(name, func(t *testing.T) {
			in := []byte(wasm)
			out, err := mergeData(in)
			if !errors.Is(err, errMalformed) {
				t.Errorf("error %v, want errMalformed", err)
			}
			checkSameSlice(t, in, out)
			ctx := context.Background()
			e, err := New(ctx, engine.Config{})
			if err != nil {
				t.Fatal(err)
			}
			defer e.Close(ctx)
			if _, err := e.Compile(ctx, in); err == nil {
				t.Error("Compile accepted the module")
			}
		})
	}
}

func FuzzMergeData(f *testing.F) {
	for _, name := range []string{"merge", "overlap", "passive", "drop", "outofbounds"} {
		f.Add(testwasm.WAT(f, filepath.Join("testdata", "datamerge", name+".wat")))
	}
	f.Fuzz(func(t *testing.T, wasm []byte) {
		in := bytes.Clone(wasm)
		out, err := mergeData(in)
		if !bytes.Equal(in, wasm) {
			t.Fatal("mergeData modified its input")
		}
		if err != nil {
			if !errors.Is(err, errMalformed) {
				t.Fatalf("error %v does not match errMalformed", err)
			}
			checkSameSlice(t, in, out)
			return
		}
		if _, err := wasmbin.Parse(out); err != nil {
			t.Fatalf("the merged module does not parse: %v", err)
		}
		// Merging is idempotent: merged segments are far apart.
		if again, err := mergeData(out); err != nil || !bytes.Equal(again, out) {
			t.Fatalf("a second pass changed the module (err %v)", err)
		}
	})
}

// TestCompile_overflowingDataOffset: a data segment's offset written in
// more bits than 32 is refused by wazero, and the merge, which re-encodes
// offsets, must not make such a module valid (it reads offsets as wazero
// does, host/engine/internal/wasmbin).
func TestCompile_overflowingDataOffset(t *testing.T) {
	ctx := context.Background()
	b := wasmbin.AppendSection([]byte(header), 5, []byte("\x01\x00\x01"))
	// Two active segments: "a" at 5 + 2^32 (five bytes), "b" at 16.
	b = wasmbin.AppendSection(b, 11, []byte("\x02"+
		"\x00\x41\x85\x80\x80\x80\x10\x0b\x01a"+
		"\x00\x41\x10\x0b\x01b"))
	if err := compiles(ctx, plainRuntime(t, ctx), b); err == nil {
		t.Fatal("wazero takes the module as it came")
	}
	m, err := plainEngine(t).Compile(ctx, b)
	if err == nil {
		m.Close(ctx)
		t.Fatal("the engine compiled a module wazero refuses")
	}
	t.Logf("Compile: %v", err)
}
