package wazero_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/blockhost/blockhost/abi"
	"github.com/blockhost/blockhost/host/engine"
	_ "github.com/blockhost/blockhost/host/engine/wazero"
	"github.com/blockhost/blockhost/internal/testwasm"
)

const pageSize = 65536

// probeKey carries a *probe in the context of a run; the engine must hand
// that context to host functions.
type probeKey struct{}

// probe records what the host function "test"."probe" saw.
type probe struct {
	mu     sync.Mutex
	calls  int
	memNil bool
	arg    uint32
}

// probeModule is "test"."probe"(ptr i32) -> i32: it records its call in
// the run's *probe, writes 0xcafe at ptr when the guest has memory, and
// returns 7.
var probeModule = engine.HostModule{Name: "test", Functions: []engine.HostFunction{{
	Name:      "probe",
	Signature: abi.Signature{Params: []abi.ValueType{abi.I32}, Results: []abi.ValueType{abi.I32}},
	Func: func(ctx context.Context, mem engine.Memory, stack []uint64) {
		p, ok := ctx.Value(probeKey{}).(*probe)
		if !ok {
			stack[0] = 0 // the guest traps on anything but 7
			return
		}
		p.mu.Lock()
		defer p.mu.Unlock()
		p.calls++
		p.memNil = mem == nil
		p.arg = uint32(stack[0])
		if mem != nil && !mem.WriteUint32Le(p.arg, 0xcafe) {
			stack[0] = 0
			return
		}
		stack[0] = 7
	},
}}}

func newEngine(t testing.TB) engine.Engine {
	t.Helper()
	factory, ok := engine.Lookup("wazero")
	if !ok {
		t.Fatalf("engine wazero not registered; have %v", engine.Names())
	}
	ctx := context.Background()
	e, err := factory(ctx, engine.Config{HostModules: []engine.HostModule{probeModule}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close(ctx) })
	return e
}

func compileFixture(t testing.TB, e engine.Engine, name string) engine.Module {
	t.Helper()
	wasm := testwasm.WAT(t, filepath.Join(testwasm.ModuleRoot(t), "host", "testdata", name+".wat"))
	m, err := e.Compile(context.Background(), wasm)
	if err != nil {
		t.Fatalf("compile %s: %v", name, err)
	}
	return m
}

func TestEngine_registered(t *testing.T) {
	e := newEngine(t)
	if e.Name() != "wazero" || e.Version() == "" {
		t.Errorf("name %q, version %q", e.Name(), e.Version())
	}
	found := false
	for _, n := range engine.Names() {
		found = found || n == "wazero"
	}
	if !found {
		t.Errorf("Names() = %v lacks wazero", engine.Names())
	}
}

func TestModule_imports_exports(t *testing.T) {
	e := newEngine(t)
	m := compileFixture(t, e, "engine")
	var probeImport *engine.Import
	for _, im := range m.Imports() {
		if im.Module == "test" && im.Name == "probe" {
			probeImport = &im
		}
	}
	if probeImport == nil || probeImport.Kind != engine.KindFunc ||
		!bytes.Equal(typeBytes(probeImport.Signature.Params), []byte{byte(abi.I32)}) ||
		!bytes.Equal(typeBytes(probeImport.Signature.Results), []byte{byte(abi.I32)}) {
		t.Errorf("imports %+v lack test.probe (i32) -> i32", m.Imports())
	}
	kinds := map[string]engine.ExternKind{}
	for _, ex := range m.Exports() {
		kinds[ex.Name] = ex.Kind
	}
	if k, ok := kinds["memory"]; !ok || k != engine.KindMemory {
		t.Errorf("exports %v: memory missing or not a memory", m.Exports())
	}
	if k, ok := kinds["spin"]; !ok || k != engine.KindFunc {
		t.Errorf("exports %v: spin missing or not a function", m.Exports())
	}
	if pages, ok := m.MinMemoryPages(); !ok || pages != 1 {
		t.Errorf("MinMemoryPages = %d, %v; want 1, true", pages, ok)
	}
	if pages, ok := compileFixture(t, e, "engine_nomem").MinMemoryPages(); ok {
		t.Errorf("module without memory: MinMemoryPages = %d, true", pages)
	}
}

func typeBytes(ts []abi.ValueType) []byte {
	b := make([]byte, len(ts))
	for i, t := range ts {
		b[i] = byte(t)
	}
	return b
}

func TestModule_Run_traps(t *testing.T) {
	e := newEngine(t)
	m := compileFixture(t, e, "engine")
	tests := []struct {
		entry         string
		names         string // what the message names
		stackOverflow bool
	}{
		{"unreachable", "unreachable", false},
		{"oob", "out of bounds memory access", false},
		{"divzero", "integer divide by zero", false},
		{"overflow", "stack overflow", true},
	}
	for _, tc := range tests {
		t.Run(tc.entry, func(t *testing.T) {
			_, err := m.Run(context.Background(), engine.RunConfig{Entry: []string{tc.entry}})
			var trap *engine.Trap
			if !errors.As(err, &trap) {
				t.Fatalf("error %v (%T), want a *engine.Trap", err, err)
			}
			if trap.StackOverflow != tc.stackOverflow {
				t.Errorf("StackOverflow = %v, want %v", trap.StackOverflow, tc.stackOverflow)
			}
			if !strings.Contains(trap.Message, tc.names) {
				t.Errorf("trap message %q does not name %q", trap.Message, tc.names)
			}
			if errors.Is(err, engine.ErrInterrupted) {
				t.Error("a trap matches ErrInterrupted")
			}
		})
	}
}

func TestModule_Run_returns(t *testing.T) {
	e := newEngine(t)
	m := compileFixture(t, e, "engine")
	res, err := m.Run(context.Background(), engine.RunConfig{Entry: []string{"return"}})
	if err != nil {
		t.Fatal(err)
	}
	if res.Exited || res.ExitCode != 0 || res.MemoryLimitHit {
		t.Errorf("result %+v, want a plain return", res)
	}
	if res.PeakMemory != pageSize {
		t.Errorf("peak memory %d, want %d", res.PeakMemory, pageSize)
	}
}

func TestModule_Run_exit(t *testing.T) {
	e := newEngine(t)
	m := compileFixture(t, e, "engine")
	tests := []struct {
		entry []string
		code  uint32
	}{
		{[]string{"exit0"}, 0},
		{[]string{"exit42"}, 42},
		// Exiting ends the run: later entries are not called.
		{[]string{"exit42", "unreachable"}, 42},
	}
	for _, tc := range tests {
		t.Run(strings.Join(tc.entry, ","), func(t *testing.T) {
			res, err := m.Run(context.Background(), engine.RunConfig{Entry: tc.entry})
			if err != nil {
				t.Fatalf("error %v, want an exit", err)
			}
			if !res.Exited || res.ExitCode != tc.code {
				t.Errorf("Exited %v, ExitCode %d; want true, %d", res.Exited, res.ExitCode, tc.code)
			}
		})
	}
}

func TestModule_Run_unknownEntry(t *testing.T) {
	e := newEngine(t)
	m := compileFixture(t, e, "engine")
	_, err := m.Run(context.Background(), engine.RunConfig{Entry: []string{"nope"}})
	var trap *engine.Trap
	if err == nil || errors.As(err, &trap) || errors.Is(err, engine.ErrInterrupted) {
		t.Errorf("error %v, want a host-side failure", err)
	}
	if err != nil && !strings.Contains(err.Error(), `"nope"`) {
		t.Errorf("error %q does not name the entry", err)
	}
}

func TestModule_Run_memory(t *testing.T) {
	e := newEngine(t)
	m := compileFixture(t, e, "engine")
	tests := []struct {
		name     string
		entry    string
		limit    uint64
		peak     uint64
		limitHit bool
	}{
		{"grow within the limit", "grow", 6 * pageSize, 6 * pageSize, false},
		{"grow without a limit", "grow", 0, 6 * pageSize, false},
		{"grow past the limit", "grow", 5 * pageSize, 4 * pageSize, true},
		{"grow until refused", "bomb", 2 << 20, 2 << 20, true},
		{"limit not a whole page", "bomb", 2<<20 + 100, 2 << 20, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res, err := m.Run(context.Background(), engine.RunConfig{Entry: []string{tc.entry}, MemoryLimit: tc.limit})
			if err != nil {
				t.Fatal(err)
			}
			if res.PeakMemory != tc.peak || res.MemoryLimitHit != tc.limitHit {
				t.Errorf("peak %d, limit hit %v; want %d, %v", res.PeakMemory, res.MemoryLimitHit, tc.peak, tc.limitHit)
			}
		})
	}
}

func TestModule_Run_initialMemoryOverLimit(t *testing.T) {
	e := newEngine(t)
	m := compileFixture(t, e, "bigmem") // 1024 pages
	res, err := m.Run(context.Background(), engine.RunConfig{Entry: []string{"_start"}, MemoryLimit: 32 << 20})
	if err != nil {
		t.Fatal(err)
	}
	if !res.MemoryLimitHit {
		t.Errorf("result %+v, want the memory limit hit", res)
	}
	res, err = m.Run(context.Background(), engine.RunConfig{Entry: []string{"_start"}, MemoryLimit: 64 << 20})
	if err != nil || res.MemoryLimitHit || res.PeakMemory != 64<<20 {
		t.Errorf("at a limit of exactly the initial size: %+v, %v", res, err)
	}
}

func TestModule_Run_interrupted(t *testing.T) {
	e := newEngine(t)
	deadline := func() (context.Context, context.CancelFunc) {
		return context.WithTimeout(context.Background(), 100*time.Millisecond)
	}
	cancelLater := func() (context.Context, context.CancelFunc) {
		ctx, cancel := context.WithCancel(context.Background())
		time.AfterFunc(100*time.Millisecond, cancel)
		return ctx, cancel
	}
	tests := []struct {
		name    string
		fixture string
		entry   string
		ctx     func() (context.Context, context.CancelFunc)
	}{
		{"loop, deadline", "engine", "spin", deadline},
		{"loop, cancelled", "engine", "spin", cancelLater},
		{"sleep, deadline", "engine", "sleep", deadline},
		{"sleep, cancelled", "engine", "sleep", cancelLater},
		// fib(60) recurses without a loop: only the checks the engine adds
		// at function entry can stop it.
		{"recursion, deadline", "recurse", "_start", deadline},
		{"recursion, cancelled", "recurse", "_start", cancelLater},
		// The start section runs while the module is instantiated.
		{"start function, deadline", "startloop", "_start", deadline},
		{"already over", "engine", "return", func() (context.Context, context.CancelFunc) {
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			return ctx, cancel
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := compileFixture(t, e, tc.fixture)
			ctx, cancel := tc.ctx()
			defer cancel()
			start := time.Now()
			done := make(chan error, 1)
			go func() {
				_, err := m.Run(ctx, engine.RunConfig{Entry: []string{tc.entry}})
				done <- err
			}()
			// The sleep is 10 s and fib(60) far longer; 2 s leaves room for
			// -race and a busy machine.
			select {
			case err := <-done:
				if !errors.Is(err, engine.ErrInterrupted) {
					t.Errorf("error %v, want ErrInterrupted", err)
				}
				if d := time.Since(start); d > 2*time.Second {
					t.Errorf("run took %v after a 100ms deadline", d)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("run not interrupted 5s after a 100ms deadline")
			}
		})
	}
}

// TestModule_Run_gcDuringLoop: a garbage collection completes while a
// guest spins in a tight loop. A collection stops every goroutine first,
// and a goroutine running compiled guest code stops only where the code
// goes out to Go: were there no way out in the interruption checks
// (instrument.go), this test would hang, the whole process with it, until
// the loop ends, and it never does here.
func TestModule_Run_gcDuringLoop(t *testing.T) {
	e := newEngine(t)
	m := compileFixture(t, e, "engine")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, err := m.Run(ctx, engine.RunConfig{Entry: []string{"spin"}})
		done <- err
	}()
	time.Sleep(50 * time.Millisecond) // the guest is spinning
	for range 5 {
		runtime.GC()
	}
	select {
	case err := <-done:
		t.Fatalf("the spin returned by itself: %v", err)
	default:
	}
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, engine.ErrInterrupted) {
			t.Errorf("error %v, want ErrInterrupted", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("run not interrupted 5s after its cancellation")
	}
}

func TestModule_Run_hostFunction(t *testing.T) {
	e := newEngine(t)
	t.Run("with memory", func(t *testing.T) {
		m := compileFixture(t, e, "engine")
		p := &probe{}
		ctx := context.WithValue(context.Background(), probeKey{}, p)
		// The guest traps unless the probe returned 7 and wrote 0xcafe.
		if _, err := m.Run(ctx, engine.RunConfig{Entry: []string{"probe"}}); err != nil {
			t.Fatal(err)
		}
		if p.calls != 1 || p.memNil || p.arg != 64 {
			t.Errorf("probe saw %d calls, memNil %v, arg %d; want 1, false, 64", p.calls, p.memNil, p.arg)
		}
	})
	t.Run("without memory", func(t *testing.T) {
		m := compileFixture(t, e, "engine_nomem")
		p := &probe{}
		ctx := context.WithValue(context.Background(), probeKey{}, p)
		if _, err := m.Run(ctx, engine.RunConfig{Entry: []string{"probe"}}); err != nil {
			t.Fatal(err)
		}
		if p.calls != 1 || !p.memNil {
			t.Errorf("probe saw %d calls, memNil %v; want 1, true", p.calls, p.memNil)
		}
	})
	t.Run("the run's context", func(t *testing.T) {
		m := compileFixture(t, e, "engine")
		// Without a *probe in ctx the host function returns 0 and the guest
		// traps.
		_, err := m.Run(context.Background(), engine.RunConfig{Entry: []string{"probe"}})
		var trap *engine.Trap
		if !errors.As(err, &trap) {
			t.Errorf("error %v, want the guest's trap", err)
		}
	})
}

func TestModule_Run_streams(t *testing.T) {
	e := newEngine(t)
	m := compileFixture(t, e, "wasiecho")
	var stdout, stderr bytes.Buffer
	res, err := m.Run(context.Background(), engine.RunConfig{
		Entry:  []string{"_start"},
		Stdin:  strings.NewReader("ping"),
		Stdout: &stdout,
		Stderr: &stderr,
	})
	if err != nil || res.Exited {
		t.Fatalf("result %+v, error %v", res, err)
	}
	if stdout.String() != "ping" || stderr.String() != "note\n" {
		t.Errorf("stdout %q, stderr %q; want %q, %q", stdout.String(), stderr.String(), "ping", "note\n")
	}
	// Nil streams: empty input, output discarded.
	res, err = m.Run(context.Background(), engine.RunConfig{Entry: []string{"_start"}})
	if err != nil || !res.Exited || res.ExitCode != 7 {
		t.Errorf("with no stdin: result %+v, error %v; want exit 7", res, err)
	}
}

// TestModule_Run_concurrent runs one compiled module from many goroutines
// at once: every run gets its own instance, memory and streams.
func TestModule_Run_concurrent(t *testing.T) {
	e := newEngine(t)
	m := compileFixture(t, e, "engine")
	const goroutines, runs = 8, 20
	var wg sync.WaitGroup
	errs := make(chan error, goroutines*runs)
	for g := range goroutines {
		wg.Go(func() {
			for i := range runs {
				in := fmt.Sprintf("goroutine %d run %d", g, i)
				var out bytes.Buffer
				entry := []string{"echo"}
				peak := uint64(pageSize)
				if i%2 == 1 {
					entry, peak = []string{"grow", "echo"}, 6*pageSize
				}
				res, err := m.Run(context.Background(), engine.RunConfig{
					Entry: entry, Stdin: strings.NewReader(in), Stdout: &out, MemoryLimit: 8 * pageSize,
				})
				switch {
				case err != nil:
					errs <- fmt.Errorf("%s: %w", in, err)
				case out.String() != in:
					errs <- fmt.Errorf("%s: output %q", in, out.String())
				case res.PeakMemory != peak || res.MemoryLimitHit || res.Exited:
					errs <- fmt.Errorf("%s: result %+v, want peak %d", in, res, peak)
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// TestModule_Run_freshInstance checks that no memory survives from one
// run to the next, while the entries of one run share their instance.
func TestModule_Run_freshInstance(t *testing.T) {
	e := newEngine(t)
	m := compileFixture(t, e, "engine")
	for i := range 2 {
		res, err := m.Run(context.Background(), engine.RunConfig{Entry: []string{"grow"}})
		if err != nil || res.PeakMemory != 6*pageSize {
			t.Errorf("run %d: %+v, %v; want memory grown from 1 to 6 pages", i, res, err)
		}
	}
	res, err := m.Run(context.Background(), engine.RunConfig{Entry: []string{"grow", "grow"}})
	if err != nil || res.PeakMemory != 11*pageSize {
		t.Errorf("grow twice in one run: %+v, %v; want 11 pages", res, err)
	}
}
