package snapshot_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/blockhost/blockhost/host/engine"
	"github.com/blockhost/blockhost/host/engine/internal/wasmbin"
	"github.com/blockhost/blockhost/host/engine/snapshot"
	_ "github.com/blockhost/blockhost/host/engine/wazero"
	"github.com/blockhost/blockhost/internal/testwasm"
)

func newEngine(t *testing.T) engine.Engine {
	t.Helper()
	f, _ := engine.Lookup("wazero")
	e, err := f(context.Background(), engine.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close(context.Background()) })
	return e
}

func run(t *testing.T, e engine.Engine, wasm []byte, cfg engine.RunConfig) engine.RunResult {
	t.Helper()
	m, err := e.Compile(context.Background(), wasm)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close(context.Background())
	res, err := m.Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// rewrite takes wasm's snapshot on e and returns the rewritten module and
// the image.
func rewrite(t *testing.T, e engine.Engine, wasm []byte) ([]byte, *snapshot.Image) {
	t.Helper()
	plan, err := snapshot.Prepare(wasm)
	if err != nil {
		t.Fatal(err)
	}
	var img *snapshot.Image
	run(t, e, plan.CaptureModule(), engine.RunConfig{Entry: []string{"_initialize"},
		Capture: func(inst engine.Instance) (err error) { img, err = plan.Take(inst); return err }})
	rewritten, err := plan.Rewrite(img)
	if err != nil {
		t.Fatal(err)
	}
	return rewritten, img
}

// A module started from the rewrite is in the state its initialisation
// left: every byte of memory, its size, and every global, of every type.
func TestRewrite_startsInTheCapturedState(t *testing.T) {
	e := newEngine(t)
	wasm := testwasm.WAT(t, filepath.Join("testdata", "state.wat"))
	want := run(t, e, wasm, engine.RunConfig{Entry: []string{"_initialize", "sum"}}).Results

	rewritten, img := rewrite(t, e, wasm)
	if len(img.Memory) != 3*65536 {
		t.Fatalf("image of %d bytes, want the 3 pages initialisation grew to", len(img.Memory))
	}
	m, err := e.Compile(context.Background(), rewritten)
	if err != nil {
		t.Fatalf("the rewritten module does not compile: %v", err)
	}
	defer m.Close(context.Background())
	if slices.ContainsFunc(m.Exports(), func(ex engine.Export) bool { return ex.Name == "_initialize" }) {
		t.Error("the rewritten module still exports _initialize")
	}
	if pages, _ := m.MinMemoryPages(); pages != 3 {
		t.Errorf("the rewritten module's memory starts at %d pages, want 3", pages)
	}
	res, err := m.Run(context.Background(), engine.RunConfig{Entry: []string{"sum"}})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(res.Results, want) {
		t.Errorf("sum of the rewritten module %v, want %v as after _initialize", res.Results, want)
	}
}

// The data of the rewrite is the image's memory, less long runs of zeros.
func TestRewrite_segments(t *testing.T) {
	wasm := testwasm.WAT(t, filepath.Join("testdata", "state.wat"))
	plan, err := snapshot.Prepare(wasm)
	if err != nil {
		t.Fatal(err)
	}
	mem := make([]byte, 2*65536)
	copy(mem[10:], "ab")
	copy(mem[10+2+100:], "cd")  // a short gap: same segment
	copy(mem[70000:], "efgh")   // a long gap: a segment of its own
	copy(mem[len(mem)-1:], "z") // the last byte
	rewritten, err := plan.Rewrite(&snapshot.Image{Memory: mem, Globals: make([]uint64, 5)})
	if err != nil {
		t.Fatal(err)
	}
	e := newEngine(t)
	var got []byte
	run(t, e, rewritten, engine.RunConfig{Capture: func(inst engine.Instance) error {
		got = bytes.Clone(inst.Memory())
		return nil
	}})
	if !bytes.Equal(got, mem) {
		t.Error("memory of the rewritten module differs from the image")
	}
	if n := bytes.Count(rewritten, []byte("efgh")); n != 1 {
		t.Errorf("the image's bytes appear %d times in the module", n)
	}
	// Three segments: the short gap is kept inside one, the long ones are
	// left out.
	m, err := wasmbin.Parse(rewritten)
	if err != nil {
		t.Fatal(err)
	}
	segs, err := wasmbin.ReadVec(m.Sections[m.Index(wasmbin.SectionData)], (*wasmbin.Reader).Data)
	if err != nil {
		t.Fatal(err)
	}
	var sizes []int
	for _, d := range segs {
		sizes = append(sizes, len(d.Init))
	}
	if !slices.Equal(sizes, []int{2 + 100 + 2, 4, 1}) {
		t.Errorf("segments of %v bytes, want [104 4 1]", sizes)
	}
}

// Modules the rewrite cannot reproduce are refused with ErrUnsupported,
// malformed ones with the decoder's error; none panics.
func TestPrepare_refuses(t *testing.T) {
	tests := map[string]string{
		"imported memory":  `(module (import "m" "mem" (memory 1)) (export "memory" (memory 0)) (func (export "_initialize")))`,
		"imported global":  `(module (import "m" "g" (global i32)) (memory (export "memory") 1) (func (export "_initialize")))`,
		"passive data":     `(module (memory (export "memory") 1) (data "x") (func (export "_initialize")))`,
		"two memories":     `(module (memory (export "memory") 1) (memory 1) (func (export "_initialize")))`,
		"no _initialize":   `(module (memory (export "memory") 1) (func (export "blockhost_run")))`,
		"memory not named": `(module (memory (export "mem") 1) (func (export "_initialize")))`,
		"no memory":        `(module (func (export "_initialize")))`,
		"64-bit memory":    `(module (memory (export "memory") i64 1) (func (export "_initialize")))`,
		"mutable funcref":  `(module (memory (export "memory") 1) (global (mut funcref) (ref.null func)) (func (export "_initialize")))`,
	}
	dir := t.TempDir()
	for name, src := range tests {
		path := filepath.Join(dir, filepath.Base(name)+".wat")
		if err := os.WriteFile(path, []byte(src), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := snapshot.Prepare(testwasm.WAT(t, path))
		if !errors.Is(err, snapshot.ErrUnsupported) {
			t.Errorf("%s: %v, want ErrUnsupported", name, err)
		}
	}
	for _, bad := range [][]byte{nil, []byte("\x00asm"), []byte("\x00asm\x01\x00\x00\x00\x05\xff"), []byte("not wasm")} {
		if _, err := snapshot.Prepare(bad); err == nil || errors.Is(err, snapshot.ErrUnsupported) {
			t.Errorf("%q: %v, want a decoding error", bad, err)
		}
	}
}

// Original describes the module a rewrite came from as compiling it
// would, and refuses a module whose exports are not the rewrite's plus
// _initialize.
func TestOriginal(t *testing.T) {
	e := newEngine(t)
	ctx := context.Background()
	wasm := testwasm.WAT(t, filepath.Join("testdata", "state.wat"))
	rewritten, _ := rewrite(t, e, wasm)
	compile := func(b []byte) engine.Module {
		t.Helper()
		m, err := e.Compile(ctx, b)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { m.Close(ctx) })
		return m
	}
	orig, rw := compile(wasm), compile(rewritten)
	imports, exports, pages, err := snapshot.Original(wasm, rw)
	if err != nil {
		t.Fatal(err)
	}
	byName := func(a, b engine.Export) int { return strings.Compare(a.Name, b.Name) }
	sorted := func(exs []engine.Export) string {
		return fmt.Sprintf("%+v", slices.SortedFunc(slices.Values(exs), byName))
	}
	if got, want := sorted(exports), sorted(orig.Exports()); got != want {
		t.Errorf("exports %s, want %s", got, want)
	}
	if got, want := fmt.Sprintf("%+v", imports), fmt.Sprintf("%+v", orig.Imports()); got != want {
		t.Errorf("imports %s, want %s", got, want)
	}
	if want, _ := orig.MinMemoryPages(); pages != want {
		t.Errorf("memory of %d pages, want %d", pages, want)
	}

	// The rewritten module is not its own original (no _initialize), nor
	// is another module, nor bytes that are no module.
	other := testwasm.WAT(t, filepath.Join("testdata", "other.wat"))
	for name, b := range map[string][]byte{"rewritten": rewritten, "other": other, "garbage": []byte("\x00asm\x01\x00\x00\x00\x07\xff")} {
		if _, _, _, err := snapshot.Original(b, rw); err == nil {
			t.Errorf("%s: described as the rewrite's original", name)
		}
	}
}
