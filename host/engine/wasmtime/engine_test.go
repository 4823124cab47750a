//go:build cgo

package wasmtime

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bytecodealliance/wasmtime-go/v39"

	"github.com/blockhost/blockhost/abi"
	"github.com/blockhost/blockhost/host/engine"
	"github.com/blockhost/blockhost/internal/testwasm"
)

type probeKey struct{}

// probeModule is "test"."probe"(ptr i32) -> i32: it checks that it got the
// run's context and the guest's memory, writes 0xcafe at ptr and returns 7.
var probeModule = engine.HostModule{Name: "test", Functions: []engine.HostFunction{{
	Name:      "probe",
	Signature: abi.Signature{Params: []abi.ValueType{abi.I32}, Results: []abi.ValueType{abi.I32}},
	Func: func(ctx context.Context, mem engine.Memory, stack []uint64) {
		calls, ok := ctx.Value(probeKey{}).(*int)
		if !ok || mem == nil || !mem.WriteUint32Le(uint32(stack[0]), 0xcafe) {
			stack[0] = 0
			return
		}
		*calls++
		stack[0] = 7
	},
}}}

func newTestEngine(t *testing.T) *Engine {
	t.Helper()
	e, err := New(context.Background(), engine.Config{HostModules: []engine.HostModule{probeModule}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close(context.Background()) })
	return e.(*Engine)
}

func compile(t *testing.T, e *Engine, watPath string) engine.Module {
	t.Helper()
	m, err := e.Compile(context.Background(), testwasm.WAT(t, watPath))
	if err != nil {
		t.Fatalf("compile %s: %v", watPath, err)
	}
	return m
}

func TestEngine_registered(t *testing.T) {
	f, ok := engine.Lookup(Name)
	if !ok {
		t.Fatalf("%s not registered: %v", Name, engine.Names())
	}
	e, err := f(context.Background(), engine.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close(context.Background())
	if e.Name() != Name || !strings.HasPrefix(e.Version(), "v39") {
		t.Errorf("name %q version %q", e.Name(), e.Version())
	}
}

// TestLibraryVersion: libraryVersion, part of every cache key, is the
// version of the library wasmtime-go links.
func TestLibraryVersion(t *testing.T) {
	cmd := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/bytecodealliance/wasmtime-go/v39")
	cmd.Dir = testwasm.ModuleRoot(t)
	dir, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	h, err := os.ReadFile(filepath.Join(strings.TrimSpace(string(dir)), "build", "include", "wasmtime.h"))
	if err != nil {
		t.Fatal(err)
	}
	if want := `#define WASMTIME_VERSION "` + libraryVersion + `"`; !strings.Contains(string(h), want) {
		t.Errorf("wasmtime.h lacks %s", want)
	}
}

func TestModule_hostFunction(t *testing.T) {
	e := newTestEngine(t)
	m := compile(t, e, "testdata/probe.wat")
	calls := 0
	ctx := context.WithValue(context.Background(), probeKey{}, &calls)
	if _, err := m.Run(ctx, engine.RunConfig{Entry: []string{"probe"}}); err != nil {
		t.Fatalf("probe: %v", err)
	}
	if calls != 1 {
		t.Fatalf("host function called %d times with the run's context", calls)
	}
}

// TestEngine_ticker: the ticker runs only while runs are in flight, and
// Close stops it.
func TestEngine_ticker(t *testing.T) {
	e, err := New(context.Background(), engine.Config{})
	if err != nil {
		t.Fatal(err)
	}
	eng := e.(*Engine)
	m := compile(t, eng, filepath.Join(testwasm.ModuleRoot(t), "host", "testdata", "loop.wat"))
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
			defer cancel()
			if _, err := m.Run(ctx, engine.RunConfig{Entry: []string{"_start"}}); !errors.Is(err, engine.ErrInterrupted) {
				t.Errorf("run: %v, want ErrInterrupted", err)
			}
		}()
	}
	wg.Wait()
	if n := eng.active.Load(); n != 0 {
		t.Errorf("%d runs still counted as active", n)
	}
	done := make(chan struct{})
	go func() {
		e.Close(context.Background())
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not stop the ticker")
	}
	if err := e.Close(context.Background()); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

// TestModule_Run_cancelBeforeTick: a cancellation is seen at once, not at
// the next tick: the engine advances the epoch itself.
func TestModule_Run_cancelPrompt(t *testing.T) {
	e := newTestEngine(t)
	m := compile(t, e, filepath.Join(testwasm.ModuleRoot(t), "host", "testdata", "loop.wat"))
	for range 20 {
		ctx, cancel := context.WithCancel(context.Background())
		var at time.Time
		time.AfterFunc(5*time.Millisecond, func() { at = time.Now(); cancel() })
		_, err := m.Run(ctx, engine.RunConfig{Entry: []string{"_start"}})
		if late := time.Since(at); late > 200*time.Millisecond {
			t.Errorf("run ended %v after its cancellation", late)
		}
		if !errors.Is(err, engine.ErrInterrupted) {
			t.Fatalf("run: %v", err)
		}
	}
}

// TestModule_Run_memoryKinds: the limit is enforced and reported on a
// 64-bit memory and on a second, unexported memory.
func TestModule_Run_memoryKinds(t *testing.T) {
	e := newTestEngine(t)
	for _, fixture := range []string{"mem64", "multimem"} {
		m := compile(t, e, "testdata/"+fixture+".wat")
		for _, tc := range []struct {
			pages int
			hit   bool
		}{{3, false}, {15, false}, {16, true}} {
			res, err := m.Run(context.Background(), engine.RunConfig{
				Entry: []string{"_start"}, Stdin: strings.NewReader(strings.Repeat("p", tc.pages)), MemoryLimit: 1 << 20,
			})
			if err != nil {
				t.Fatalf("%s +%d pages: %v", fixture, tc.pages, err)
			}
			if res.MemoryLimitHit != tc.hit || res.Exited != tc.hit {
				t.Errorf("%s +%d pages under 16: %+v", fixture, tc.pages, res)
			}
			if want := uint64(1+tc.pages) * 65536; !tc.hit && res.PeakMemory != want {
				t.Errorf("%s +%d pages: peak %d, want %d", fixture, tc.pages, res.PeakMemory, want)
			}
		}
	}
}

func TestModule_exportsHideTheRewrite(t *testing.T) {
	e := newTestEngine(t)
	m := compile(t, e, "testdata/multimem.wat")
	for _, ex := range m.Exports() {
		if strings.HasPrefix(ex.Name, hookExportPrefix) {
			t.Errorf("export %q of the rewrite is visible", ex.Name)
		}
	}
	nomem := compile(t, e, filepath.Join(testwasm.ModuleRoot(t), "host", "testdata", "engine_nomem.wat"))
	if len(nomem.Exports()) != 1 {
		t.Errorf("exports %v, want the module's one", nomem.Exports())
	}
	if pages, ok := nomem.MinMemoryPages(); ok {
		t.Errorf("a module without memory reports %d pages", pages)
	}
}

func TestCheckLayout(t *testing.T) {
	if err := checkLayout(); err != nil {
		t.Fatal(err)
	}
}

// TestHookGrow_corpus rewrites every module the repository runs, and the
// third-party WASI programs: each rewrite must succeed, validate, and
// describe the module as reading it without rewriting does.
func TestHookGrow_corpus(t *testing.T) {
	eng := wasmtime.NewEngine()
	defer eng.Close()
	for name, wasm := range corpus(t) {
		t.Run(name, func(t *testing.T) {
			out, info, err := hookGrow(wasm, true)
			if err != nil {
				t.Fatalf("rewrite: %v", err)
			}
			if err := wasmtime.ModuleValidate(eng, out); err != nil {
				t.Fatalf("rewritten module does not validate: %v", err)
			}
			_, read, err := hookGrow(wasm, false)
			if err != nil {
				t.Fatalf("read: %v", err)
			}
			read.hooked = info.hooked
			if !equalInfo(read, info) {
				t.Errorf("read %+v, rewrote %+v", read, info)
			}
		})
	}
}

func equalInfo(a, b growInfo) bool {
	if a.hooked != b.hooked || a.addedMemory != b.addedMemory || a.exportedMemory != b.exportedMemory || len(a.memories) != len(b.memories) {
		return false
	}
	for i := range a.memories {
		if a.memories[i] != b.memories[i] {
			return false
		}
	}
	return true
}

// corpus is every .wat fixture of the repository, the Go hello example and
// the third-party WASI programs wazero ships.
func corpus(t testing.TB) map[string][]byte {
	root := testwasm.ModuleRoot(t)
	out := map[string][]byte{}
	for _, pattern := range []string{"host/testdata/*.wat", "internal/conformance/testdata/*.wat", "host/engine/wasmtime/testdata/*.wat", "examples/*/*.wat"} {
		paths, _ := filepath.Glob(filepath.Join(root, pattern))
		for _, p := range paths {
			rel, _ := filepath.Rel(root, p)
			out[rel] = testwasm.WAT(t, p)
		}
	}
	if len(out) < 30 {
		t.Fatalf("only %d fixtures", len(out))
	}
	out["examples/hello"] = testwasm.Go(t, filepath.Join(root, "examples", "hello"))
	cmd := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/tetratelabs/wazero")
	cmd.Dir = root
	dir, err := cmd.Output()
	if err != nil {
		t.Fatalf("locating wazero's WASI test programs: %v", err)
	}
	paths, _ := filepath.Glob(filepath.Join(strings.TrimSpace(string(dir)), "imports", "wasi_snapshot_preview1", "testdata", "*", "wasi.wasm"))
	if len(paths) < 4 {
		t.Fatalf("found %d of wazero's WASI test programs", len(paths))
	}
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		out["wazero/"+filepath.Base(filepath.Dir(p))] = b
	}
	return out
}

func FuzzHookGrow(f *testing.F) {
	for _, wasm := range corpus(f) {
		if len(wasm) < 1<<16 {
			f.Add(wasm)
		}
	}
	eng := wasmtime.NewEngine()
	f.Fuzz(func(t *testing.T, wasm []byte) {
		out, _, err := hookGrow(wasm, true)
		if err != nil {
			return
		}
		if wasmtime.ModuleValidate(eng, wasm) == nil {
			if err := wasmtime.ModuleValidate(eng, out); err != nil {
				t.Fatalf("valid module made invalid: %v", err)
			}
		}
	})
}

// TestEngine_allocation runs a step with each instance allocator: on
// Linux, instances on demand with the engine's own memories (memory.go);
// elsewhere the pool where the address space allows, and on-demand
// allocation where it does not. Every engine bounds the runs in flight.
func TestEngine_allocation(t *testing.T) {
	check := func(e *Engine, pooled bool) {
		t.Helper()
		if e.pooled != pooled {
			t.Errorf("pooled: %v, want %v", e.pooled, pooled)
		}
		if cap(e.slots) != maxRuns {
			t.Errorf("at most %d runs in flight, want %d", cap(e.slots), maxRuns)
		}
		m := compile(t, e, filepath.Join(testwasm.ModuleRoot(t), "host", "testdata", "membomb.wat"))
		res, err := m.Run(context.Background(), engine.RunConfig{Entry: []string{"_start"}, MemoryLimit: 4 << 20})
		if !res.MemoryLimitHit || res.PeakMemory != 49*65536 {
			t.Errorf("pooled %v: %+v, %v", pooled, res, err)
		}
	}
	check(newTestEngine(t), !memoryCreator)
	saved := poolAvailable
	poolAvailable = func() bool { return false }
	defer func() { poolAvailable = saved }()
	check(newTestEngine(t), false)
}

// TestModule_Run_waitsForASlot: with every pool slot held, a run waits,
// and ends as interrupted when its context ends while it waits.
func TestModule_Run_waitsForASlot(t *testing.T) {
	e := newTestEngine(t)
	for range maxRuns {
		e.slots <- struct{}{}
	}
	m := compile(t, e, filepath.Join(testwasm.ModuleRoot(t), "host", "testdata", "trap.wat"))
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := m.Run(ctx, engine.RunConfig{Entry: []string{"_start"}}); !errors.Is(err, engine.ErrInterrupted) {
		t.Fatalf("run without a slot: %v", err)
	}
	<-e.slots
	var trap *engine.Trap
	if _, err := m.Run(context.Background(), engine.RunConfig{Entry: []string{"_start"}}); !errors.As(err, &trap) {
		t.Fatalf("run with a slot free: %v", err)
	}
	for range maxRuns - 1 {
		<-e.slots
	}
}

// TestEngine_closeReleasesModules: Close closes what the engine compiled.
func TestEngine_closeReleasesModules(t *testing.T) {
	e, err := New(context.Background(), engine.Config{})
	if err != nil {
		t.Fatal(err)
	}
	eng := e.(*Engine)
	compile(t, eng, filepath.Join(testwasm.ModuleRoot(t), "host", "testdata", "trap.wat"))
	m := compile(t, eng, filepath.Join(testwasm.ModuleRoot(t), "host", "testdata", "loop.wat"))
	m.Close(context.Background())
	if n := eng.life.Len(); n != 1 {
		t.Errorf("%d modules tracked, want 1", n)
	}
	e.Close(context.Background())
	if n := eng.life.Len(); n != 0 {
		t.Errorf("%d modules not released", n)
	}
	if _, err := e.Compile(context.Background(), testwasm.WAT(t, filepath.Join(testwasm.ModuleRoot(t), "host", "testdata", "trap.wat"))); err == nil {
		t.Error("compiled on a closed engine")
	}
	m.Close(context.Background()) // again, after the engine: no effect
}

// TestEngine_retire: a run's store is deleted and its slot given back
// after Run returns, by the closer, or by the run itself once the engine is
// closing; Close waits for the closer.
func TestEngine_retire(t *testing.T) {
	e := newTestEngine(t)
	if !e.pooled {
		t.Skip("no pool")
	}
	m := compile(t, e, filepath.Join(testwasm.ModuleRoot(t), "host", "testdata", "trap.wat"))
	run := func() {
		var trap *engine.Trap
		if _, err := m.Run(context.Background(), engine.RunConfig{Entry: []string{"_start"}}); !errors.As(err, &trap) {
			t.Fatalf("run: %v", err)
		}
	}
	for range 20 {
		run()
	}
	e.stopCloser()
	if n := len(e.slots); n != 0 {
		t.Fatalf("%d slots still held after the closer stopped", n)
	}
	// Closing: the run deletes its own store before Run returns.
	run()
	if n := len(e.slots); n != 0 {
		t.Fatalf("%d slots still held after a run on a closing engine", n)
	}
}
