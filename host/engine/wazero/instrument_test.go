package wazero

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/tetratelabs/wazero"

	"github.com/blockhost/blockhost/host/engine"
	"github.com/blockhost/blockhost/host/engine/internal/wasmbin"
	"github.com/blockhost/blockhost/internal/testwasm"
)

// The tests here read modules with a decoder of their own, written from
// the WebAssembly binary format rather than from instrument.go, so that
// they check the rewrite instead of repeating it.

// testModule is one module of the corpus.
type testModule struct {
	name string
	wasm []byte
}

// watCorpus assembles every .wat fixture of the repository: the host's
// and the examples'.
func watCorpus(t testing.TB) []testModule {
	t.Helper()
	root := testwasm.ModuleRoot(t)
	var paths []string
	for _, pattern := range []string{"host/testdata/*.wat", "examples/*/*.wat", "host/engine/wazero/testdata/lazytable/calls.wat"} {
		m, err := filepath.Glob(filepath.Join(root, pattern))
		if err != nil {
			t.Fatal(err)
		}
		paths = append(paths, m...)
	}
	if len(paths) < 20 {
		t.Fatalf("found only %d .wat fixtures under %s", len(paths), root)
	}
	var out []testModule
	for _, p := range paths {
		rel, _ := filepath.Rel(root, p)
		out = append(out, testModule{name: rel, wasm: testwasm.WAT(t, p)})
	}
	return out
}

func goModule(t testing.TB) testModule {
	t.Helper()
	return testModule{name: "examples/hello (Go)", wasm: testwasm.Go(t, filepath.Join(testwasm.ModuleRoot(t), "examples", "hello"))}
}

type testSection struct {
	id      byte
	content []byte
}

// testULEB decodes an unsigned LEB128 of at most 5 bytes; n is 0 when b
// does not start with one.
func testULEB(b []byte) (v uint64, n int) {
	for i := 0; i < len(b) && i < 5; i++ {
		v |= uint64(b[i]&0x7f) << (7 * i)
		if b[i]&0x80 == 0 {
			return v, i + 1
		}
	}
	return 0, 0
}

// testSections splits a module into its sections, or reports why it
// cannot.
func testSections(wasm []byte) ([]testSection, error) {
	if len(wasm) < 8 || !bytes.Equal(wasm[:4], []byte("\x00asm")) {
		return nil, errors.New("no header")
	}
	var out []testSection
	for pos := 8; pos < len(wasm); {
		id := wasm[pos]
		size, n := testULEB(wasm[pos+1:])
		if n == 0 {
			return nil, errors.New("bad section size")
		}
		start := pos + 1 + n
		if uint64(len(wasm)-start) < size {
			return nil, errors.New("section past the end")
		}
		out = append(out, testSection{id: id, content: wasm[start : start+int(size)]})
		pos = start + int(size)
	}
	return out, nil
}

// testBody is one function body: its local declarations, including their
// count, and its instructions.
type testBody struct {
	locals, code []byte
}

func testCodeSection(t testing.TB, content []byte) []testBody {
	t.Helper()
	count, n := testULEB(content)
	if n == 0 {
		t.Fatal("code section: bad count")
	}
	var out []testBody
	pos := n
	for range count {
		size, n := testULEB(content[pos:])
		if n == 0 || uint64(len(content)-pos-n) < size {
			t.Fatalf("code section: bad body size at %d", pos)
		}
		body := content[pos+n : pos+n+int(size)]
		pos += n + int(size)

		groups, p := testULEB(body)
		for range groups {
			_, m := testULEB(body[p:])
			p += m
			typ := body[p]
			p++
			if typ == 0x63 || typ == 0x64 { // (ref null? ht): an s33 follows
				for body[p]&0x80 != 0 {
					p++
				}
				p++
			}
		}
		out = append(out, testBody{locals: body[:p], code: body[p:]})
	}
	if pos != len(content) {
		t.Fatalf("code section: %d bytes after the last body", len(content)-pos)
	}
	return out
}

// plainRuntime is wazero with its default configuration, none of this
// engine's settings, but for a compilation cache shared by test runs:
// compiling the Go module takes seconds under -race. wazero decodes and
// validates a module before it looks in the cache, so a cached module is
// still checked.
func plainRuntime(t testing.TB, ctx context.Context) wazero.Runtime {
	t.Helper()
	cache, err := wazero.NewCompilationCacheWithDir(filepath.Join(testCacheDir(t), "plain"))
	if err != nil {
		t.Fatal(err)
	}
	rt := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfig().WithCompilationCache(cache))
	t.Cleanup(func() {
		rt.Close(ctx)
		cache.Close(ctx)
	})
	return rt
}

// testCacheDir is the compilation cache the tests share across runs,
// one directory per wazero version. wazero keys its cache by its own
// version, which it cannot find in a test binary (it reads "dev" for every
// release), so without the version in the path a wazero upgrade would load
// code compiled by the old one.
func testCacheDir(t testing.TB) string {
	t.Helper()
	gomod, err := os.ReadFile(filepath.Join(testwasm.ModuleRoot(t), "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.SplitSeq(string(gomod), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "github.com/tetratelabs/wazero" {
			return filepath.Join(os.TempDir(), "blockhost-test-cache", "wazero-"+f[1])
		}
	}
	t.Fatal("go.mod does not require github.com/tetratelabs/wazero")
	return ""
}

// compiles reports whether plain wazero, with none of this engine's
// settings, compiles wasm.
func compiles(ctx context.Context, rt wazero.Runtime, wasm []byte) error {
	cm, err := rt.CompileModule(ctx, wasm)
	if err != nil {
		return err
	}
	return cm.Close(ctx)
}

func TestAddInterruptChecks_corpus(t *testing.T) {
	ctx := context.Background()
	rt := plainRuntime(t, ctx)

	corpus := append(watCorpus(t), goModule(t))
	var bodies, loops, lazyTables int
	for _, m := range corpus {
		t.Run(m.name, func(t *testing.T) {
			in := bytes.Clone(m.wasm)
			out, err := addInterruptChecks(in)
			if err != nil {
				t.Fatalf("addInterruptChecks: %v", err)
			}
			if !bytes.Equal(in, m.wasm) {
				t.Fatal("addInterruptChecks modified its input")
			}
			if err := compiles(ctx, rt, out); err != nil {
				t.Fatalf("instrumented module does not compile: %v", err)
			}
			inSecs, err := testSections(in)
			if err != nil {
				t.Fatal(err)
			}
			outSecs, err := testSections(out)
			if err != nil {
				t.Fatalf("instrumented module: %v", err)
			}
			flag, hasMemory := testGlobalsAndMemory(t, inSecs)
			check := testCheck(flag, flag+1)
			added := map[byte]bool{6: true, 7: true}
			var inCode, outCode []byte
			// The lazy table (lazytable.go) changes the type, function
			// and element sections together, or none of them.
			lazy := map[byte][2][]byte{}
			j := 0
			for _, b := range outSecs {
				var a *testSection
				if j < len(inSecs) && inSecs[j].id == b.id {
					a = &inSecs[j]
					j++
				}
				switch {
				case b.id == 10:
					inCode, outCode = a.content, b.content
				case b.id == 6:
					testCheckFlagGlobal(t, a, b)
				case b.id == 7:
					testCheckFlagExport(t, a, b, flag, !hasMemory)
				case (b.id == 1 || b.id == 3 || b.id == 9) && a != nil:
					lazy[b.id] = [2][]byte{a.content, b.content}
				case b.id == 5 && a == nil:
					if !bytes.Equal(b.content, []byte{0x01, 0x01, 0x00, 0x00}) {
						t.Errorf("memory section added: % x, want one empty memory", b.content)
					}
				case a == nil:
					t.Fatalf("section id %d added", b.id)
				case !bytes.Equal(a.content, b.content):
					t.Errorf("section id %d changed", b.id)
				}
				delete(added, b.id)
			}
			if j != len(inSecs) || len(added) > 0 {
				t.Fatalf("sections: %d of %d kept, %v not there", j, len(inSecs), added)
			}
			inBodies, outBodies := testCodeSection(t, inCode), testCodeSection(t, outCode)
			// guards[k] is the guard before function k's indirect calls,
			// when the lazy table applies.
			var guards [][]byte
			if el := lazy[9]; !bytes.Equal(el[0], el[1]) {
				fill := testFuncCount(t, inSecs)
				fillType, result := testFillType(t, inSecs)
				offset, n := testCheckLazyTable(t, lazy, fillType)
				for k, p := range testParams(t, inSecs) {
					s := p + testLocalCount(inBodies[k].locals)
					guards = append(guards, testGuard(s, offset, n, fill, result))
				}
				if len(outBodies) != len(inBodies)+1 {
					t.Fatalf("%d function bodies, was %d: want fill added", len(outBodies), len(inBodies))
				}
				outBodies = outBodies[:len(inBodies)]
				lazyTables++
			} else {
				for id, c := range lazy {
					if !bytes.Equal(c[0], c[1]) {
						t.Errorf("section id %d changed", id)
					}
				}
			}
			if len(inBodies) != len(outBodies) {
				t.Fatalf("%d function bodies, was %d", len(outBodies), len(inBodies))
			}
			guarded := 0
			for k, ib := range inBodies {
				ob := outBodies[k]
				locals := ib.locals
				if guards != nil && bytes.Contains(ob.code, guards[k]) {
					// One i32 more, for the guard.
					groups, n := testULEB(locals)
					locals = append(testAppendULEB(nil, groups+1), locals[n:]...)
					locals = append(locals, 0x01, 0x7f)
					guarded++
				}
				if !bytes.Equal(locals, ob.locals) || !bytes.HasPrefix(ob.code, check) {
					t.Errorf("function %d: locals % x code % x, want locals % x and the check % x first",
						k, ob.locals, head(ob.code), locals, check)
				}
				// The checks are the only bytes added: what is left without
				// them is the body as it was, and there is one more than the
				// body has loops (each written `loop` + a one-byte type,
				// here, then the check).
				spend := append([]byte{0x41, 0x00, 0x24}, testAppendULEB(nil, flag+1)...)
				got := bytes.ReplaceAll(bytes.ReplaceAll(ob.code, check, nil), spend, nil)
				if guards != nil {
					// The guard comes before each call_indirect and
					// return_call_indirect.
					for _, op := range []byte{0x11, 0x13} {
						got = bytes.ReplaceAll(got, append(bytes.Clone(guards[k]), op), []byte{op})
					}
				}
				if !bytes.Equal(got, ib.code) {
					t.Errorf("function %d: without its checks the code differs from the original", k)
				}
				n := bytes.Count(ob.code, check)
				if l := bytes.Count(ob.code, append([]byte{0x03, 0x40}, check...)); n < 1+l {
					t.Errorf("function %d: %d checks for %d empty-typed loops", k, n, l)
				} else {
					loops += l
				}
				bodies++
			}
			if guards != nil && guarded == 0 {
				t.Error("no call_indirect is guarded")
			}
		})
	}
	if bodies == 0 || loops == 0 || lazyTables < 2 {
		t.Errorf("the corpus exercised %d bodies, %d loops and %d lazy tables; want all (two lazy tables, the Go module's and calls.wat's)", bodies, loops, lazyTables)
	}
}

// testFuncCount counts the functions a module imports and defines.
func testFuncCount(t testing.TB, secs []testSection) uint64 {
	t.Helper()
	var n uint64
	for _, s := range secs {
		switch s.id {
		case 2:
			for _, kind := range testImportKinds(t, s.content) {
				if kind == 0x00 {
					n++
				}
			}
		case 3:
			c, _ := testULEB(s.content)
			n += c
		}
	}
	return n
}

// testCheckLazyTable checks the sections the lazy table changes, each a
// pair of contents, before and after: the types as they were, one
// function of type fillType appended, and the one active segment turned
// declarative, with the same functions; it returns the segment's offset
// and length.
func testCheckLazyTable(t testing.TB, secs map[byte][2][]byte, fillType uint64) (offset int64, n uint64) {
	t.Helper()
	appended := func(id byte, tail []byte) {
		c := secs[id]
		was, n := testULEB(c[0])
		want := append(testAppendULEB(nil, was+1), c[0][n:]...)
		want = append(want, tail...)
		if !bytes.Equal(c[1], want) {
			t.Errorf("section id %d ends % x, want % x", id, c[1][max(0, len(c[1])-12):], want[max(0, len(want)-12):])
		}
	}
	if !bytes.Equal(secs[1][0], secs[1][1]) {
		t.Error("type section changed")
	}
	appended(3, testAppendULEB(nil, fillType))
	// Active, flags 0: count 1, 0x00, i32.const offset end, the vector;
	// declarative: count 1, 0x03, elemkind 0x00, the same vector.
	in, out := secs[9][0], secs[9][1]
	if len(in) < 3 || in[0] != 0x01 || in[1] != 0x00 || in[2] != 0x41 {
		t.Fatalf("element section was % x, not one active segment", head(in))
	}
	offset, m := testSLEB(in[3:])
	if in[3+m] != 0x0b {
		t.Fatalf("element section was % x, not a constant offset", head(in))
	}
	vec := in[3+m+1:]
	n, _ = testULEB(vec)
	want := append([]byte{0x01, 0x03, 0x00}, vec...)
	if !bytes.Equal(out, want) {
		t.Errorf("element section % x, want % x", head(out), head(want))
	}
	return offset, n
}

// testSLEB decodes a signed LEB128 of at most 5 bytes.
func testSLEB(b []byte) (v int64, n int) {
	var shift uint
	for n < len(b) && n < 5 {
		c := b[n]
		n++
		v |= int64(c&0x7f) << shift
		shift += 7
		if c&0x80 == 0 {
			if shift < 64 && c&0x40 != 0 {
				v |= -1 << shift
			}
			return v, n
		}
	}
	return 0, 0
}

func testAppendSLEB(b []byte, v int64) []byte {
	for {
		c := byte(v & 0x7f)
		v >>= 7
		if (v == 0 && c&0x40 == 0) || (v == -1 && c&0x40 != 0) {
			return append(b, c)
		}
		b = append(b, c|0x80)
	}
}

// testFillType returns the first type [i32] -> [] of the module, or
// else the first [i32] -> [i32], and whether it has a result.
func testFillType(t testing.TB, secs []testSection) (uint64, bool) {
	t.Helper()
	for _, s := range secs {
		if s.id != 1 {
			continue
		}
		count, p := testULEB(s.content)
		withResult := -1
		for i := range count {
			params, m := testULEB(s.content[p+1:])
			ps := s.content[p+1+m : p+1+m+int(params)]
			q := p + 1 + m + int(params)
			results, m2 := testULEB(s.content[q:])
			rs := s.content[q+m2 : q+m2+int(results)]
			p = q + m2 + int(results)
			switch {
			case string(ps) == "\x7f" && len(rs) == 0:
				return i, false
			case string(ps) == "\x7f" && string(rs) == "\x7f" && withResult < 0:
				withResult = int(i)
			}
		}
		if withResult >= 0 {
			return uint64(withResult), true
		}
	}
	t.Fatal("the lazy table applied to a module without [i32] -> [] or [i32] -> [i32]")
	return 0, false
}

// testParams returns how many parameters each function the module
// defines takes, from its type and function sections (function types
// only, as in the corpus).
func testParams(t testing.TB, secs []testSection) []uint64 {
	t.Helper()
	var types []uint64
	var out []uint64
	for _, s := range secs {
		switch s.id {
		case 1:
			count, p := testULEB(s.content)
			for range count {
				if s.content[p] != 0x60 {
					t.Fatalf("type 0x%x", s.content[p])
				}
				p++
				params, m := testULEB(s.content[p:])
				p += m + int(params) // one-byte value types
				results, m := testULEB(s.content[p:])
				p += m + int(results)
				types = append(types, params)
			}
		case 3:
			count, p := testULEB(s.content)
			for range count {
				ti, m := testULEB(s.content[p:])
				p += m
				out = append(out, types[ti])
			}
		}
	}
	return out
}

// testLocalCount counts the locals a body's declarations declare.
func testLocalCount(decl []byte) uint64 {
	groups, p := testULEB(decl)
	var total uint64
	for range groups {
		n, m := testULEB(decl[p:])
		total += n
		p += m + 1 // one-byte value types, as in the corpus
	}
	return total
}

// testGuard is the guard before an indirect call, assembled here from
// the text format, with the index in local s: when the index lies in the
// segment and its entry is null, call fill with it.
func testGuard(s uint64, offset int64, n, fill uint64, result bool) []byte {
	l := testAppendULEB(nil, s)
	var b []byte
	add := func(parts ...[]byte) {
		for _, p := range parts {
			b = append(b, p...)
		}
	}
	add([]byte{0x22}, l, []byte{0x20}, l)                                      // local.tee s, local.get s
	add([]byte{0x41}, testAppendSLEB(nil, offset), []byte{0x6b})               // i32.sub offset
	add([]byte{0x41}, testAppendSLEB(nil, int64(n)), []byte{0x49, 0x04, 0x40}) // i32.lt_u n, if
	add([]byte{0x20}, l, []byte{0x25, 0x00, 0xd1, 0x04, 0x40})                 // table.get 0, ref.is_null, if
	add([]byte{0x20}, l, []byte{0x10}, testAppendULEB(nil, fill))              // call fill
	if result {
		add([]byte{0x1a}) // drop
	}
	add([]byte{0x0b, 0x0b})
	return b
}

// testGlobalsAndMemory counts the globals a module imports and defines,
// and reports whether it defines or imports a memory.
func testGlobalsAndMemory(t testing.TB, secs []testSection) (globals uint64, memory bool) {
	t.Helper()
	for _, s := range secs {
		switch s.id {
		case 5:
			memory = true
		case 6:
			c, _ := testULEB(s.content)
			globals += c
		case 2:
			for _, kind := range testImportKinds(t, s.content) {
				switch kind {
				case 0x02:
					memory = true
				case 0x03:
					globals++
				}
			}
		}
	}
	return globals, memory
}

// testImportKinds returns the kind of each import of an import section.
func testImportKinds(t testing.TB, content []byte) []byte {
	t.Helper()
	count, p := testULEB(content)
	var kinds []byte
	for range count {
		for range 2 { // module and name
			l, m := testULEB(content[p:])
			p += m + int(l)
		}
		kind := content[p]
		p++
		switch kind {
		case 0x00: // type index
			_, m := testULEB(content[p:])
			p += m
		case 0x01: // table: reftype, limits
			p++
			p += testLimitsLen(content[p:])
		case 0x02: // memory: limits
			p += testLimitsLen(content[p:])
		case 0x03: // global: valtype, mutability
			p += 2
		default:
			t.Fatalf("import kind 0x%x", kind)
		}
		kinds = append(kinds, kind)
	}
	return kinds
}

func testLimitsLen(b []byte) int {
	p := 1
	_, m := testULEB(b[p:])
	p += m
	if b[0]&1 != 0 {
		_, m := testULEB(b[p:])
		p += m
	}
	return p
}

// testCheck is the check, assembled here from the text format: take one
// from the budget; when spent, grow memory by nothing, trap on the flag,
// refill the budget with 1000.
func testCheck(flag, budget uint64) []byte {
	f, g := testAppendULEB(nil, flag), testAppendULEB(nil, budget)
	var b []byte
	add := func(parts ...[]byte) {
		for _, p := range parts {
			b = append(b, p...)
		}
	}
	add([]byte{0x23}, g, []byte{0x41, 0x01, 0x6b, 0x24}, g)    // budget -= 1
	add([]byte{0x23}, g, []byte{0x41, 0x00, 0x4c, 0x04, 0x40}) // if budget <= 0
	add([]byte{0x41, 0x00, 0x40, 0x00, 0x1a})                  // drop (memory.grow 0)
	add([]byte{0x23}, f, []byte{0x04, 0x40, 0x00, 0x0b})       // if flag: unreachable
	add([]byte{0x41, 0xe8, 0x07, 0x24}, g, []byte{0x0b})       // budget = 1000; end
	return b
}

func testAppendULEB(b []byte, v uint64) []byte {
	for {
		c := byte(v & 0x7f)
		if v >>= 7; v != 0 {
			b = append(b, c|0x80)
			continue
		}
		return append(b, c)
	}
}

// testCheckFlagGlobal checks that the global section is a's (or empty)
// with two more entries, mutable i32s starting at zero and 1000.
func testCheckFlagGlobal(t testing.TB, a *testSection, b testSection) {
	t.Helper()
	var was uint64
	var rest []byte
	if a != nil {
		c, n := testULEB(a.content)
		was, rest = c, a.content[n:]
	}
	want := append(testAppendULEB(nil, was+2), rest...)
	want = append(want, 0x7f, 0x01, 0x41, 0x00, 0x0b, 0x7f, 0x01, 0x41, 0xe8, 0x07, 0x0b)
	if !bytes.Equal(b.content, want) {
		t.Errorf("global section % x, want % x", head(b.content), head(want))
	}
}

// testCheckFlagExport checks that the export section is a's (or empty)
// with two more entries, the flag's and the budget's.
func testCheckFlagExport(t testing.TB, a *testSection, b testSection, flag uint64, memory bool) {
	t.Helper()
	var was uint64
	var rest []byte
	if a != nil {
		c, n := testULEB(a.content)
		was, rest = c, a.content[n:]
	}
	n := was + 2
	if memory {
		n++
	}
	want := append(testAppendULEB(nil, n), rest...)
	want = append(testAppendULEB(want, uint64(len(interruptExport))), interruptExport...)
	want = testAppendULEB(append(want, 0x03), flag)
	want = append(testAppendULEB(want, uint64(len(budgetExport))), budgetExport...)
	want = testAppendULEB(append(want, 0x03), flag+1)
	if memory {
		want = append(testAppendULEB(want, uint64(len(memoryExport))), memoryExport...)
		want = append(want, 0x02, 0x00)
	}
	if !bytes.Equal(b.content, want) {
		t.Errorf("export section ends % x, want % x", b.content[max(0, len(b.content)-24):], want[max(0, len(want)-24):])
	}
}

// TestAddInterruptChecks_loop: the exact bytes for a function that is a
// loop, in a module with one global of its own and one imported, and no
// memory.
func TestAddInterruptChecks_loop(t *testing.T) {
	in := []byte(header +
		"\x01\x04\x01\x60\x00\x00" + // type 0: [] -> []
		"\x02\x08\x01\x01m\x01g\x03\x7f\x00" + // import m.g: global i32
		"\x03\x02\x01\x00" + // function 0: type 0
		"\x06\x06\x01\x7f\x01\x41\x07\x0b" + // global 1: mut i32 = 7
		"\x0a\x09\x01\x07\x00\x03\x40\x0c\x00\x0b\x0b") // (loop (br 0))
	out, err := addInterruptChecks(in)
	if err != nil {
		t.Fatal(err)
	}
	check := string(testCheck(2, 3))
	body := "\x00" + check + "\x03\x40" + check + "\x0c\x00\x0b\x0b"
	exports := "\x03\x13" + interruptExport + "\x03\x02\x10" + budgetExport + "\x03\x03\x10" + memoryExport + "\x02\x00"
	want := header +
		"\x01\x04\x01\x60\x00\x00" +
		"\x02\x08\x01\x01m\x01g\x03\x7f\x00" +
		"\x03\x02\x01\x00" +
		"\x05\x04\x01\x01\x00\x00" +
		"\x06\x11\x03\x7f\x01\x41\x07\x0b\x7f\x01\x41\x00\x0b\x7f\x01\x41\xe8\x07\x0b" +
		"\x07" + string(testAppendULEB(nil, uint64(len(exports)))) + exports +
		"\x0a" + string(testAppendULEB(nil, uint64(2+len(body)))) + "\x01" + string(testAppendULEB(nil, uint64(len(body)))) + body
	if string(out) != want {
		t.Errorf("got  % x\nwant % x", out, want)
	}
	if err := compiles(context.Background(), plainRuntime(t, context.Background()), out); err != nil {
		t.Fatal(err)
	}
}

// TestAddInterruptChecks_refused: a module whose code names the index the
// flag would take (invalid as it is, and able to clear the flag once
// rewritten), or that exports the flag's name, is refused.
func TestAddInterruptChecks_refused(t *testing.T) {
	for name, wasm := range map[string]string{
		"global.set of the flag's index": header + "\x01\x04\x01\x60\x00\x00\x03\x02\x01\x00" +
			"\x0a\x08\x01\x06\x00\x41\x00\x24\x00\x0b",
		"global.get past the globals": header + "\x01\x04\x01\x60\x00\x00\x03\x02\x01\x00" +
			"\x06\x06\x01\x7f\x01\x41\x00\x0b" +
			"\x0a\x07\x01\x05\x00\x23\x05\x1a\x0b",
		"the flag's export name": header + "\x01\x04\x01\x60\x00\x00\x03\x02\x01\x00" +
			"\x07\x17\x01\x13" + interruptExport + "\x00\x00" +
			"\x0a\x04\x01\x02\x00\x0b",
		"the memory's export name": header + "\x01\x04\x01\x60\x00\x00\x03\x02\x01\x00" +
			"\x07\x14\x01\x10" + memoryExport + "\x00\x00" +
			"\x0a\x04\x01\x02\x00\x0b",
		"the start function's export name (any blockhost: name)": header + "\x01\x04\x01\x60\x00\x00\x03\x02\x01\x00" +
			"\x07\x13\x01\x0f" + startExport + "\x00\x00" +
			"\x0a\x04\x01\x02\x00\x0b",
		"an export of the flag's index": header + "\x01\x04\x01\x60\x00\x00\x03\x02\x01\x00" +
			"\x07\x05\x01\x01g\x03\x00" +
			"\x0a\x04\x01\x02\x00\x0b",
		// wazero reads a SIMD sub-opcode as one byte: fd 80 02 is i16x8.abs
		// then `block` to it, where the binary format (and the rewrite's
		// decoder) reads opcode 0x100; what follows would then be read
		// differently, and its loop would get no check.
		"a SIMD sub-opcode wazero reads otherwise": header + "\x01\x04\x01\x60\x00\x00\x03\x02\x01\x00" +
			"\x0a\x22\x01\x20\x00\xfd\x0c" + strings.Repeat("\x00", 16) + "\xfd\x80\x02\x40\x03\x40\x01\x0c\x00\x0b\x0b\x1a\x0b",
		"a padded misc sub-opcode": header + "\x01\x04\x01\x60\x00\x00\x03\x02\x01\x00\x05\x03\x01\x00\x01" +
			"\x0a\x0e\x01\x0c\x00\x41\x00\x41\x00\x41\x00\xfc\x8b\x00\x00\x0b",
		"the budget's export name": header + "\x01\x04\x01\x60\x00\x00\x03\x02\x01\x00" +
			"\x07\x14\x01\x10" + budgetExport + "\x00\x00" +
			"\x0a\x04\x01\x02\x00\x0b",
	} {
		t.Run(name, func(t *testing.T) {
			in := []byte(wasm)
			if _, err := wasmbin.Parse(in); err != nil {
				t.Fatalf("the fixture does not parse: %v", err)
			}
			out, err := addInterruptChecks(in)
			if err == nil {
				t.Fatal("accepted")
			}
			if strings.Contains(name, "sub-opcode") && !strings.Contains(err.Error(), "sub-opcode") {
				t.Errorf("refused for another reason: %v", err)
			}
			checkSameSlice(t, in, out)
		})
	}
}

func head(b []byte) []byte { return b[:min(len(b), 8)] }

func TestAddInterruptChecks_noCode(t *testing.T) {
	for _, wasm := range [][]byte{
		[]byte("\x00asm\x01\x00\x00\x00"),
		[]byte("\x00asm\x01\x00\x00\x00\x05\x03\x01\x00\x01"), // a memory section only
		[]byte("\x00asm\x01\x00\x00\x00\x00\x04\x03abc"),      // a custom section only
	} {
		out, err := addInterruptChecks(wasm)
		if err != nil || !bytes.Equal(out, wasm) {
			t.Errorf("addInterruptChecks(% x) = % x, %v; want it unchanged", wasm, out, err)
		}
	}
}

// header is the module preamble: magic and version 1.
const header = "\x00asm\x01\x00\x00\x00"

func TestAddInterruptChecks_malformed(t *testing.T) {
	tests := []struct {
		name string
		wasm string
	}{
		{"empty", ""},
		{"short magic", "\x00as"},
		{"short header", header[:7]},
		{"wrong magic", "\x01asm\x01\x00\x00\x00"},
		{"section id without size", header + "\x01"},
		{"size LEB that never ends", header + "\x01\xff\xff\xff\xff\xff\x00"},
		{"size LEB cut short", header + "\x01\x80"},
		{"size LEB over 32 bits", header + "\x01\xff\xff\xff\xff\x7f"},
		{"size LEB of 2^32, which wraps to 0", header + "\x00\x80\x80\x80\x80\x10"},
		{"section past the end", header + "\x01\x05\x00"},
		{"code section past the end", header + "\x0a\x06\x01\x02\x00\x0b"},
		{"code section without count", header + "\x0a\x00"},
		{"fewer bodies than counted", header + "\x0a\x04\x02\x02\x00\x0b"},
		{"body past the section", header + "\x0a\x03\x01\x05\x00"},
		{"bytes after the last body", header + "\x0a\x05\x01\x02\x00\x0b\xff"},
		{"body size LEB cut short", header + "\x0a\x02\x01\x80"},
		{"local group count LEB cut short", header + "\x0a\x03\x01\x01\x80"},
		{"local group without type", header + "\x0a\x04\x01\x02\x01\x01"},
		{"local group count past the body", header + "\x0a\x04\x01\x02\x05\x01"},
		{"ref local with unterminated heap type", header + "\x0a\x06\x01\x04\x01\x01\x63\x80"},
		{"huge body count", header + "\x0a\x05\xff\xff\xff\xff\x0f"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := []byte(tc.wasm)
			out, err := addInterruptChecks(in)
			if !errors.Is(err, errMalformed) {
				t.Errorf("error %v, want errMalformed", err)
			}
			checkSameSlice(t, in, out)
		})
	}
}

// TestAddInterruptChecks_allocationBounded checks that the rewrite of a
// malformed module allocates in proportion to its bytes, not to the counts
// it declares.
func TestAddInterruptChecks_allocationBounded(t *testing.T) {
	in := []byte(header + "\x0a\x05\xff\xff\xff\xff\x0f")
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	if _, err := addInterruptChecks(in); !errors.Is(err, errMalformed) {
		t.Errorf("error %v, want errMalformed", err)
	}
	runtime.ReadMemStats(&after)
	if got := after.TotalAlloc - before.TotalAlloc; got > 1<<20 {
		t.Errorf("rewriting %d bytes allocated %d bytes", len(in), got)
	}
}

// checkSameSlice asserts that out is in itself, not a copy.
func checkSameSlice(t testing.TB, in, out []byte) {
	t.Helper()
	if len(out) != len(in) || (len(in) > 0 && &out[0] != &in[0]) {
		t.Errorf("returned %d bytes, not the original %d", len(out), len(in))
	}
}

// TestAddInterruptChecks_truncated cuts real modules at every length: a cut
// inside a section up to the code section is an error that leaves the
// bytes alone; a cut between sections is a shorter module, rewritten like
// any other. (Past the code section the rewrite need not look: the
// compiler reports a cut there.)
func TestAddInterruptChecks_truncated(t *testing.T) {
	corpus := watCorpus(t)
	for _, m := range corpus {
		secs, err := testSections(m.wasm)
		if err != nil {
			t.Fatal(err)
		}
		boundaries := map[int]bool{8: true}
		end, codeEnd := 8, len(m.wasm)
		for _, s := range secs {
			_, n := testULEB(m.wasm[end+1:])
			end += 1 + n + len(s.content)
			boundaries[end] = true
			if s.id == 10 {
				codeEnd = end
			}
		}
		for cut := 0; cut < len(m.wasm); cut++ {
			in := bytes.Clone(m.wasm[:cut])
			out, err := addInterruptChecks(in)
			switch {
			case boundaries[cut]:
				if err != nil {
					t.Errorf("%s cut at section boundary %d: %v", m.name, cut, err)
				}
			case err != nil:
				checkSameSlice(t, in, out)
			case cut < codeEnd:
				t.Errorf("%s cut at %d, inside a section: no error", m.name, cut)
			}
		}
	}
}

// maxFuzzLocals bounds the locals of one function in a module the fuzz
// test hands to wazero.
const maxFuzzLocals = 50000

// compilable reports whether plain wazero compiles wasm, asking only about
// modules that wabt's wasm-validate accepts, in a process of its own, and
// whose functions declare at most maxFuzzLocals locals each. wazero
// v1.12.0 sizes its tables by counts read from the module before it checks
// them against the bytes there are: a module of fifteen bytes whose code
// section counts 2^32-1 bodies ends the process with "fatal error: out of
// memory", and so do a huge count in the name section or in a function's
// locals. That is wazero's to fix (reported with these tests); the fuzz
// test is after faults of the rewrite, so it keeps such modules away from
// wazero.
func compilable(t *testing.T, ctx context.Context, rt wazero.Runtime, validate string, wasm []byte) bool {
	t.Helper()
	if !fewLocals(wasm) {
		return false
	}
	cmd := exec.Command(validate, "--enable-all", "/dev/stdin")
	cmd.Stdin = bytes.NewReader(wasm)
	if err := cmd.Run(); err != nil {
		var exit *exec.ExitError
		if !errors.As(err, &exit) {
			t.Fatalf("wasm-validate: %v", err)
		}
		return false
	}
	return compiles(ctx, rt, wasm) == nil
}

// fewLocals reports whether every function body of wasm that can be read
// declares at most maxFuzzLocals locals.
func fewLocals(wasm []byte) bool {
	secs, err := testSections(wasm)
	if err != nil {
		return true // wasm-validate refuses it
	}
	for _, s := range secs {
		if s.id != 10 {
			continue
		}
		count, n := testULEB(s.content)
		pos := n
		for range min(count, uint64(len(s.content))) {
			size, n := testULEB(s.content[pos:])
			if n == 0 || uint64(len(s.content)-pos-n) < size {
				return true
			}
			body := s.content[pos+n : pos+n+int(size)]
			pos += n + int(size)
			groups, p := testULEB(body)
			var sum uint64
			for range min(groups, uint64(len(body))) {
				num, m := testULEB(body[p:])
				if m == 0 {
					break
				}
				sum += num
				p += m + 1
				if p > len(body) {
					break
				}
			}
			if sum > maxFuzzLocals {
				return false
			}
		}
	}
	return true
}

func FuzzAddInterruptChecks(f *testing.F) {
	for _, m := range watCorpus(f) {
		f.Add(m.wasm)
	}
	// A module with a table the rewrite fills lazily, whose one function
	// calls indirectly naming local 1 (the guard's, past its one
	// parameter), or names type 1 (past its one type): invalid, and to
	// stay so.
	for _, code := range []string{"\x00\x20\x01\x20\x00\x11\x00\x00\x0b", "\x00\x20\x00\x02\x01\x1a\x0b\x20\x00\x0b"} {
		b := wasmbin.AppendSection([]byte(header), 1, []byte("\x01\x60\x01\x7f\x01\x7f"))
		b = wasmbin.AppendSection(b, 3, []byte("\x01\x00"))
		b = wasmbin.AppendSection(b, 4, []byte("\x01\x70\x00\x01"))
		b = wasmbin.AppendSection(b, 5, []byte("\x01\x00\x01"))
		b = wasmbin.AppendSection(b, 9, []byte("\x01\x00\x41\x00\x0b\x01\x00"))
		f.Add(wasmbin.AppendSection(b, 10, append(wasmbin.AppendU32([]byte{0x01}, uint32(len(code))), code...)))
	}
	f.Add([]byte(header + "\x0a\x05\xff\xff\xff\xff\x0f"))
	validate, err := exec.LookPath("wasm-validate")
	if err != nil {
		f.Fatal("wasm-validate not found: install wabt (apt-get install wabt)")
	}
	ctx := context.Background()
	rt := wazero.NewRuntime(ctx)
	f.Cleanup(func() { rt.Close(ctx) })

	f.Fuzz(func(t *testing.T, wasm []byte) {
		in := bytes.Clone(wasm)
		out, err := addInterruptChecks(in)
		if !bytes.Equal(in, wasm) {
			t.Fatal("addInterruptChecks modified its input")
		}
		if err != nil {
			checkSameSlice(t, in, out)
		}
		// The other way: what wazero refuses, the rewrite must not make
		// valid (a type, a local, a function or a global it adds must not
		// give meaning to an index that had none). A module given the
		// empty memory is the exception the engine covers by compiling it
		// as it came too (TestCompile_noMemoryStaysInvalid).
		if err == nil && fewLocals(wasm) && !bytes.Contains(out, []byte(memoryExport)) {
			if cm, cerr := compileModule(ctx, rt, wasm); cerr == nil {
				cm.Close(ctx)
			} else if cm, rerr := compileModule(ctx, rt, out); rerr == nil {
				cm.Close(ctx)
				t.Fatalf("wazero refuses the module (%v) but compiles its rewritten form", cerr)
			}
		}
		if !compilable(t, ctx, rt, validate, wasm) {
			return
		}
		if err != nil {
			t.Fatalf("wazero compiles the module but addInterruptChecks refused it: %v", err)
		}
		if cerr := compiles(ctx, rt, out); cerr != nil {
			t.Fatalf("wazero compiles the module but not its instrumented form: %v", cerr)
		}
	})
}

// TestPrecheck_liesAboutCounts: modules whose declared counts exceed their
// bytes are refused before wazero sizes anything from them.
func TestPrecheck_liesAboutCounts(t *testing.T) {
	for name, wasm := range map[string][]byte{
		"codeCount":  []byte("\x00asm\x01\x00\x00\x00\x0a\x05\xff\xff\xff\xff\x0f"),
		"typeCount":  []byte("\x00asm\x01\x00\x00\x00\x01\x05\xff\xff\xff\xff\x0f"),
		"manyLocals": []byte("\x00asm\x01\x00\x00\x00\x0a\x09\x01\x07\x01\xff\xff\xff\xff\x0f\x7f"),
		"nameCount":  []byte("\x00asm\x01\x00\x00\x00\x00\x0c\x04name\x01\x05\xff\xff\xff\xff\x0f"),
	} {
		t.Run(name, func(t *testing.T) {
			if err := precheck(wasm); err == nil {
				t.Fatal("precheck accepted a module that lies about its counts")
			}
			f, _ := engine.Lookup(Name)
			e, err := f(context.Background(), engine.Config{})
			if err != nil {
				t.Fatal(err)
			}
			defer e.Close(context.Background())
			if _, err := e.Compile(context.Background(), wasm); err == nil {
				t.Fatal("Compile accepted the module")
			}
		})
	}
	ok := testwasm.WAT(t, filepath.Join(testwasm.ModuleRoot(t), "host", "testdata", "echo.wat"))
	if err := precheck(ok); err != nil {
		t.Fatalf("precheck refused a valid module: %v", err)
	}
}

// TestAddInterruptChecks_goModule: a Go module grows by the checks at
// its functions' entries and loops, a few per cent.
func TestAddInterruptChecks_goModule(t *testing.T) {
	wasm := testwasm.Go(t, filepath.Join(testwasm.ModuleRoot(t), "examples", "hello"))
	out, err := addInterruptChecks(wasm)
	if err != nil {
		t.Fatal(err)
	}
	if grown := len(out) - len(wasm); grown <= 0 || grown > len(wasm)/20 {
		t.Errorf("instrumenting a Go module added %d bytes to %d", grown, len(wasm))
	}
}

// TestCompile_uninterruptible: a module the rewrite refuses is not
// compiled. wazero's own error is given when wazero refuses it too (code
// naming a global that does not exist); otherwise the rewrite's (a valid
// module exporting a name the host reserves), never a module compiled
// without its checks.
func TestCompile_uninterruptible(t *testing.T) {
	ctx := context.Background()
	e := plainEngine(t)
	invalid := []byte(header + "\x01\x04\x01\x60\x00\x00\x03\x02\x01\x00" +
		"\x0a\x08\x01\x06\x00\x41\x00\x24\x00\x0b")
	if _, err := e.Compile(ctx, invalid); err == nil || strings.Contains(err.Error(), "interruption") {
		t.Errorf("global.set of a global that does not exist: %v, want wazero's error", err)
	}
	reserved := []byte(header + "\x01\x04\x01\x60\x00\x00\x03\x02\x01\x00" +
		"\x07\x17\x01\x13" + interruptExport + "\x00\x00" +
		"\x0a\x04\x01\x02\x00\x0b")
	if err := compiles(ctx, plainRuntime(t, ctx), reserved); err != nil {
		t.Fatalf("the fixture is not a valid module: %v", err)
	}
	if _, err := e.Compile(ctx, reserved); err == nil || !strings.Contains(err.Error(), "reserved for the host") {
		t.Errorf("a module exporting %q: %v, want the rewrite's refusal", interruptExport, err)
	}
}

// TestAddInterruptChecks_bulk: after a bulk memory operation the budget is
// spent, so that the next check goes out to Go: a loop of fills as large
// as memory would otherwise hold off the garbage collector for a thousand
// of them.
func TestAddInterruptChecks_bulk(t *testing.T) {
	in := []byte(header + "\x01\x04\x01\x60\x00\x00\x03\x02\x01\x00\x05\x03\x01\x00\x01" +
		"\x0a\x0d\x01\x0b\x00\x41\x00\x41\x00\x41\x00\xfc\x0b\x00\x0b") // memory.fill 0 0 0
	out, err := addInterruptChecks(in)
	if err != nil {
		t.Fatal(err)
	}
	secs, err := testSections(out)
	if err != nil {
		t.Fatal(err)
	}
	var code []byte
	for _, sec := range secs {
		if sec.id == 10 {
			code = testCodeSection(t, sec.content)[0].code
		}
	}
	want := string(testCheck(0, 1)) + "\x41\x00\x41\x00\x41\x00\xfc\x0b\x00" + "\x41\x00\x24\x01" + "\x0b"
	if string(code) != want {
		t.Errorf("code % x\nwant % x", code, want)
	}
	if err := compiles(context.Background(), plainRuntime(t, context.Background()), out); err != nil {
		t.Fatal(err)
	}
}

// TestCompile_noMemoryStaysInvalid: the memory added to a module without
// one does not make its memory instructions valid.
func TestCompile_noMemoryStaysInvalid(t *testing.T) {
	ctx := context.Background()
	e := plainEngine(t)
	load := []byte(header + "\x01\x04\x01\x60\x00\x00\x03\x02\x01\x00" +
		"\x0a\x0a\x01\x08\x00\x41\x00\x28\x02\x00\x1a\x0b") // i32.load with no memory
	if m, err := e.Compile(ctx, load); err == nil {
		m.Close(ctx)
		t.Fatal("a module without memory that loads from one was compiled")
	}
	ok := []byte(header + "\x01\x04\x01\x60\x00\x00\x03\x02\x01\x00\x0a\x04\x01\x02\x00\x0b")
	m, err := e.Compile(ctx, ok)
	if err != nil {
		t.Fatalf("a valid module without memory: %v", err)
	}
	m.Close(ctx)
}

// plainEngine is an engine with no host modules and no disk cache, closed
// at the test's end.
func plainEngine(t *testing.T) engine.Engine {
	t.Helper()
	e, err := New(context.Background(), engine.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close(context.Background()) })
	return e
}

// TestAddInterruptChecks_emptyMemorySection: a memory section of no
// memories is a module without memory: it gets the empty one the checks
// grow, and compiles.
func TestAddInterruptChecks_emptyMemorySection(t *testing.T) {
	in := []byte(header + "\x01\x04\x01\x60\x00\x00\x03\x02\x01\x00\x05\x01\x00\x0a\x04\x01\x02\x00\x0b")
	out, err := addInterruptChecks(in)
	if err != nil {
		t.Fatal(err)
	}
	if err := compiles(context.Background(), plainRuntime(t, context.Background()), out); err != nil {
		t.Fatalf("the rewritten module does not compile: %v", err)
	}
}

// typedRefModule is a module of 30 types [] -> [], a memory and one
// function, exported as spin, of the given local declarations and code.
func typedRefModule(locals, code string) []byte {
	types := "\x1e" + strings.Repeat("\x60\x00\x00", 30)
	body := locals + code
	b := wasmbin.AppendSection([]byte(header), 1, []byte(types))
	b = wasmbin.AppendSection(b, 3, []byte("\x01\x00"))
	b = wasmbin.AppendSection(b, 5, []byte("\x01\x00\x01"))
	b = wasmbin.AppendSection(b, 7, []byte("\x01\x04spin\x00\x00"))
	return wasmbin.AppendSection(b, 10, append(wasmbin.AppendU32([]byte{0x01}, uint32(len(body))), body...))
}

// TestCompile_typedReferenceRefused: wazero v1.12.0 validates a typed
// select `1c 01 63 03` as a select, and compiles it as a select followed
// by `loop`: a loop the rewrite would not see, with no check, which no
// deadline could stop and which would hang the host at its next garbage
// collection. Code with a reference type naming a type is refused, in a
// select, a local or a block type. (The module is only compiled here:
// running it would spin for ever.)
func TestCompile_typedReferenceRefused(t *testing.T) {
	ctx := context.Background()
	e := plainEngine(t)
	hidden := typedRefModule("\x01\x01\x63\x03",
		"\x02\x40"+ // block
			"\x20\x00\x20\x00\x41\x00\x1c\x01\x63\x03\x1a"+ // select (ref null 3): to wazevo, select; loop (type 26)
			"\x0c\x00"+ // br 0
			"\xd0\x6f\xd0\x6f\x41\x00\x1c\x01\x63\x0b\x1a"+ // select (ref null 11): to wazevo, the loop's end
			"\x0b\x0b")
	if err := compiles(ctx, plainRuntime(t, ctx), hidden); err != nil {
		t.Logf("plain wazero no longer takes the module: %v", err)
	}
	for name, wasm := range map[string][]byte{
		"typed select hiding a loop": hidden,
		"local":                      typedRefModule("\x01\x01\x63\x00", "\x0b"),
		"non-null local":             typedRefModule("\x01\x01\x64\x00", "\x0b"),
		"block type":                 typedRefModule("\x00", "\x02\x63\x00\x00\x0b\x0b"),
		// 0x63 as the s33 e3 7f, which wazero decodes as 0x63 and then
		// reads a heap type, 0c, and a loop: block (result (ref null 12))
		// loop br 0 end unreachable end drop. Read as a type index, the
		// block type would leave `0c 03` to be a br, the loop unseen.
		"block type in two bytes": typedRefModule("\x00", "\x02\xe3\x7f\x0c\x03\x40\x0c\x00\x0b\x00\x0b\x1a\x0b"),
	} {
		t.Run(name, func(t *testing.T) {
			m, err := e.Compile(ctx, wasm)
			if err == nil {
				m.Close(ctx)
				t.Fatal("compiled")
			}
			if name == "typed select hiding a loop" && !strings.Contains(err.Error(), "0x63/0x64") {
				t.Errorf("error %q does not name the reference type", err)
			}
		})
	}
}

// TestCompileModule_panicIsError: a module on which wazero's compiler
// panics (a typed select whose type index it reads as a block type out
// of range) fails its compilation instead of the host.
func TestCompileModule_panicIsError(t *testing.T) {
	ctx := context.Background()
	b := wasmbin.AppendSection([]byte(header), 1, []byte("\x03\x60\x00\x01\x7f\x60\x01\x7f\x01\x7f\x60\x00\x00"))
	b = wasmbin.AppendSection(b, 3, []byte("\x01\x01"))
	b = wasmbin.AppendSection(b, 5, []byte("\x01\x00\x01"))
	// if (local.get 0) { unreachable; i32.const 0; select (ref null 2); drop }; i32.const 0
	// (to wazevo: ...; select; block (type 26), a type out of range)
	body := "\x00\x20\x00\x04\x40\x00\x41\x00\x1c\x01\x63\x02\x1a\x0b\x41\x00\x0b"
	wasm := wasmbin.AppendSection(b, 10, append(wasmbin.AppendU32([]byte{0x01}, uint32(len(body))), body...))
	_, err := compileModule(ctx, plainRuntime(t, ctx), wasm)
	if err == nil {
		t.Fatal("wazero compiled the module: its compiler no longer misreads a typed select, and this test needs another panic")
	}
	t.Logf("compileModule: %v", err)
}
