package wazero

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/experimental"

	"github.com/blockhost/blockhost/host/engine/internal/wasmbin"
	"github.com/blockhost/blockhost/internal/testwasm"
)

// lazyApplied reports whether wasm's element section holds one
// declarative segment, as the lazy table leaves it.
func lazyApplied(t testing.TB, wasm []byte) bool {
	t.Helper()
	m, err := wasmbin.Parse(wasm)
	if err != nil {
		t.Fatal(err)
	}
	i := m.Index(wasmbin.SectionElement)
	return i >= 0 && len(m.Sections[i].Content) > 1 && m.Sections[i].Content[1] == 0x03
}

// tailRuntime is plain wazero with the tail-call feature, which tail.wat
// needs.
func tailRuntime(t testing.TB, ctx context.Context) wazero.Runtime {
	t.Helper()
	rt := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfig().
		WithCoreFeatures(api.CoreFeaturesV2|experimental.CoreFeaturesTailCall))
	t.Cleanup(func() { rt.Close(ctx) })
	return rt
}

// TestLazyTable_sameResults: through a table filled lazily, every call
// gives what it gives through the table as the module came, the value or
// the trap (null entry, type mismatch, out of bounds), on the first call
// through an entry and on the next.
func TestLazyTable_sameResults(t *testing.T) {
	ctx := context.Background()
	rt := tailRuntime(t, ctx)
	for _, c := range []struct{ file, third string }{
		{"calls.wat", "twice"},
		{"tail.wat", "tail"},
	} {
		t.Run(c.file, func(t *testing.T) {
			orig := testwasm.WAT(t, filepath.Join("testdata", "lazytable", c.file))
			out, err := addInterruptChecks(orig)
			if err != nil {
				t.Fatal(err)
			}
			if !lazyApplied(t, out) {
				t.Fatal("the rewrite left the table as it came")
			}
			instance := func(wasm []byte) api.Module {
				m, err := rt.InstantiateWithConfig(ctx, wasm, wazero.NewModuleConfig().WithName(""))
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { m.Close(ctx) })
				return m
			}
			want, got := instance(orig), instance(out)
			call := func(m api.Module, fn string, args ...uint64) string {
				res, err := m.ExportedFunction(fn).Call(ctx, args...)
				if err != nil {
					// The first line names the trap; the stack trace
					// below it names functions by index.
					msg, _, _ := strings.Cut(err.Error(), "\n")
					return "trap: " + msg
				}
				return fmt.Sprint(res)
			}
			var values, traps int
			for round := range 2 {
				for _, i := range []uint64{2, 3, 4, 0, 1, 5, 7, 8, 9, 1 << 31, 0xffffffff} {
					for _, f := range []struct {
						name string
						args []uint64
					}{
						{"call", []uint64{i, 5}},
						{"callxi", []uint64{5, i}},
						{"call0", []uint64{i}},
						{c.third, []uint64{i, 5}},
					} {
						w, g := call(want, f.name, f.args...), call(got, f.name, f.args...)
						if w != g {
							t.Errorf("round %d: %s%v = %s, want %s", round, f.name, f.args, g, w)
						}
						if strings.HasPrefix(w, "trap") {
							traps++
						} else {
							values++
						}
					}
				}
			}
			if values == 0 || traps == 0 {
				t.Errorf("%d values and %d traps; want both", values, traps)
			}
		})
	}
}

// TestLazyTable_fresh: each instance fills its own table: an entry
// filled in one instance is filled in no other, and calls the function
// of its own instance.
func TestLazyTable_fresh(t *testing.T) {
	ctx := context.Background()
	rt := tailRuntime(t, ctx)
	out, err := addInterruptChecks(testwasm.WAT(t, filepath.Join("testdata", "lazytable", "counter.wat")))
	if err != nil {
		t.Fatal(err)
	}
	if !lazyApplied(t, out) {
		t.Fatal("the rewrite left the table as it came")
	}
	cm, err := rt.CompileModule(ctx, out)
	if err != nil {
		t.Fatal(err)
	}
	next := func(m api.Module) uint64 {
		res, err := m.ExportedFunction("next").Call(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return res[0]
	}
	a, err := rt.InstantiateModule(ctx, cm, wazero.NewModuleConfig().WithName(""))
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close(ctx)
	for want := uint64(1); want <= 3; want++ {
		if got := next(a); got != want {
			t.Fatalf("first instance: next() = %d, want %d", got, want)
		}
	}
	b, err := rt.InstantiateModule(ctx, cm, wazero.NewModuleConfig().WithName(""))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close(ctx)
	if got := next(b); got != 1 {
		t.Errorf("second instance: next() = %d, want 1: its table called the first instance's function", got)
	}
	if got := next(a); got != 4 {
		t.Errorf("first instance after the second: next() = %d, want 4", got)
	}
}

// TestLazyTable_notApplied: a module whose table the guest or the host
// can reach otherwise than by call_indirect, or which the rewrite's
// conditions do not fit, keeps its table as it came, and still runs.
func TestLazyTable_notApplied(t *testing.T) {
	ctx := context.Background()
	rt := plainRuntime(t, ctx)
	const base = `(module
  (type $ii (func (param i32) (result i32)))
  TABLE
  ELEM
  (func $f (type $ii) (local.get 0))
  (func (export "call") (param i32 i32) (result i32)
    (call_indirect (type $ii) (local.get 1) (local.get 0)))
  EXTRA)`
	const table, elem = `(table 4 funcref)`, `(elem (i32.const 0) $f)`
	for _, c := range []struct {
		name, table, elem, extra string
		imports                  bool
	}{
		{name: "control"},
		{name: "table.get", extra: `(func (export "get") (result funcref) (table.get 0 (i32.const 0)))`},
		{name: "table.set", extra: `(func (export "set") (table.set 0 (i32.const 1) (ref.null func)))`},
		{name: "table.size", extra: `(func (export "size") (result i32) (table.size 0))`},
		{name: "table.grow", extra: `(func (export "grow") (result i32) (table.grow 0 (ref.null func) (i32.const 1)))`},
		{name: "table.fill", extra: `(func (export "fill") (table.fill 0 (i32.const 0) (ref.null func) (i32.const 1)))`},
		{name: "table.copy", extra: `(func (export "copy") (table.copy (i32.const 1) (i32.const 0) (i32.const 1)))`},
		{name: "elem.drop", extra: `(func (export "drop") (elem.drop 0))`},
		{name: "exported table", extra: `(export "t" (table 0))`},
		{name: "imported table", table: `(import "m" "t" (table 4 funcref))`, imports: true},
		{name: "two tables", extra: `(table 1 funcref)`},
		{name: "two segments", elem: `(elem (i32.const 0) $f) (elem (i32.const 1) $f)`},
		{name: "offset from a global", table: `(import "m" "g" (global $g i32)) (table 4 funcref)`, elem: `(elem (global.get $g) $f)`, imports: true},
		{name: "segment past the table", table: `(table 1 funcref)`, elem: `(elem (i32.const 1) $f)`},
		{name: "passive segment", elem: `(elem func $f)`},
	} {
		t.Run(c.name, func(t *testing.T) {
			src := strings.NewReplacer("TABLE", or(c.table, table), "ELEM", or(c.elem, elem), "EXTRA", c.extra).Replace(base)
			path := filepath.Join(t.TempDir(), "m.wat")
			if err := os.WriteFile(path, []byte(src), 0o600); err != nil {
				t.Fatal(err)
			}
			in := testwasm.WAT(t, path)
			out, err := addInterruptChecks(in)
			if err != nil {
				t.Fatal(err)
			}
			if applied := lazyApplied(t, out); applied != (c.name == "control") {
				t.Fatalf("lazy table applied: %v, want %v", applied, !applied)
			}
			if c.imports {
				if err := compiles(ctx, rt, out); err != nil {
					t.Fatal(err)
				}
				return
			}
			// The same calls, the same results, values or traps.
			results := func(wasm []byte) (r []string) {
				m, err := rt.InstantiateWithConfig(ctx, wasm, wazero.NewModuleConfig().WithName(""))
				if err != nil {
					msg, _, _ := strings.Cut(err.Error(), "\n")
					return []string{"instantiation: " + msg}
				}
				defer m.Close(ctx)
				for i := range uint64(3) {
					res, err := m.ExportedFunction("call").Call(ctx, i, 5)
					msg := fmt.Sprint(res)
					if err != nil {
						msg, _, _ = strings.Cut(err.Error(), "\n")
					}
					r = append(r, msg)
				}
				return r
			}
			want, got := results(in), results(out)
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("call(0..2, 5) = %q, want %q", got, want)
			}
		})
	}
}

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// TestLazyTable_refused: a module naming, anywhere, the function index the
// rewrite gives fill, or the local index it gives the guard, was invalid
// as it came; the rewrite refuses it rather than make it valid. Each case
// is also checked with index 0, which is valid and is rewritten.
func TestLazyTable_refused(t *testing.T) {
	ctx := context.Background()
	rt := plainRuntime(t, ctx)
	// One type [i32] -> [i32], one function, one table of one entry, one
	// active segment: function 1 would be fill.
	module := func(parts map[byte]string) []byte {
		secs := map[byte]string{
			1:  "\x01\x60\x01\x7f\x01\x7f",
			3:  "\x01\x00",
			4:  "\x01\x70\x00\x01",
			9:  "\x01\x00\x41\x00\x0b\x01\x00",
			10: "\x01\x04\x00\x20\x00\x0b",
		}
		for id, c := range parts {
			secs[id] = c
		}
		b := []byte(header)
		for _, id := range []byte{1, 3, 4, 6, 7, 8, 9, 10} {
			if c, ok := secs[id]; ok {
				b = wasmbin.AppendSection(b, id, []byte(c))
			}
		}
		return b
	}
	for _, c := range []struct {
		name  string
		parts func(idx string) map[byte]string
	}{
		{"call", func(idx string) map[byte]string {
			return map[byte]string{10: "\x01\x06\x00\x20\x00\x10" + idx + "\x0b"}
		}},
		{"ref.func in code", func(idx string) map[byte]string {
			return map[byte]string{10: "\x01\x07\x00\xd2" + idx + "\x1a\x20\x00\x0b"}
		}},
		{"export", func(idx string) map[byte]string {
			return map[byte]string{7: "\x01\x01f\x00" + idx}
		}},
		{"element segment", func(idx string) map[byte]string {
			return map[byte]string{9: "\x01\x00\x41\x00\x0b\x01" + idx}
		}},
		{"global initialiser", func(idx string) map[byte]string {
			return map[byte]string{6: "\x01\x70\x00\xd2" + idx + "\x0b"}
		}},
		// Here index 1 is the guard's local: the function has one
		// parameter and no locals.
		{"local", func(idx string) map[byte]string {
			return map[byte]string{10: "\x01\x04\x00\x20" + idx + "\x0b"}
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			valid := module(c.parts("\x00"))
			out, err := addInterruptChecks(valid)
			if err != nil {
				t.Fatalf("with function 0: %v", err)
			}
			if !lazyApplied(t, out) {
				t.Fatal("with function 0: the rewrite left the table as it came")
			}
			if err := compiles(ctx, rt, out); err != nil {
				t.Fatalf("with function 0: %v", err)
			}
			invalid := module(c.parts("\x01"))
			if compiles(ctx, rt, invalid) == nil {
				t.Fatal("with function 1: wazero takes the module as it came")
			}
			if _, err := addInterruptChecks(invalid); !errors.Is(err, errMalformed) {
				t.Errorf("with function 1: addInterruptChecks = %v, want it refused as malformed", err)
			}
		})
	}
}

// TestLazyTable_staysInvalid: a module that names a type past its own, or
// writes its segment's offset in more bits than 32, was invalid as it
// came and stays so: the rewrite adds no type (fill takes one the module
// has), and reads the offset as wazero does.
func TestLazyTable_staysInvalid(t *testing.T) {
	ctx := context.Background()
	rt := plainRuntime(t, ctx)
	module := func(elem, code string) []byte {
		b := wasmbin.AppendSection([]byte(header), 1, []byte("\x01\x60\x01\x7f\x01\x7f")) // [i32] -> [i32]
		b = wasmbin.AppendSection(b, 3, []byte("\x01\x00"))
		b = wasmbin.AppendSection(b, 4, []byte("\x01\x70\x00\x08"))
		b = wasmbin.AppendSection(b, 9, []byte(elem))
		return wasmbin.AppendSection(b, 10, append(wasmbin.AppendU32([]byte{0x01}, uint32(len(code))), code...))
	}
	const (
		elem = "\x01\x00\x41\x00\x0b\x01\x00"
		// local.get 0, local.get 0, call_indirect (type 0), end
		call = "\x00\x20\x00\x20\x00\x11\x00\x00\x0b"
	)
	valid := module(elem, call)
	if out, err := addInterruptChecks(valid); err != nil || !lazyApplied(t, out) || compiles(ctx, rt, out) != nil {
		t.Fatalf("the valid module: %v, lazy table %v, %v", err, err == nil && lazyApplied(t, out), compiles(ctx, rt, out))
	}
	for name, wasm := range map[string][]byte{
		// local.get 0; block (type 1) drop end; local.get 0: type 1 is
		// [i32] -> [], had the rewrite added one
		"block of the next type": module(elem, "\x00\x20\x00\x02\x01\x1a\x0b\x20\x00\x0b"),
		// offset 5 + 2^32, in five bytes
		"offset past 32 bits": module("\x01\x00\x41\x85\x80\x80\x80\x10\x0b\x01\x00", call),
	} {
		t.Run(name, func(t *testing.T) {
			if compiles(ctx, rt, wasm) == nil {
				t.Fatal("wazero takes the module as it came")
			}
			out, err := addInterruptChecks(wasm)
			if err != nil {
				return // refused
			}
			if err := compiles(ctx, rt, out); err == nil {
				t.Errorf("the rewrite made the module valid (lazy table %v)", lazyApplied(t, out))
			}
		})
	}
}
