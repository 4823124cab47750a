// Package wazero is the default blockhost engine: github.com/tetratelabs/wazero,
// pure Go, no cgo. Importing it registers the engine under the name
// "wazero".
//
// Interruption uses wazero's close-on-context-done mode, which checks the
// context at loop headers; the engine adds an empty loop at the entry of
// every function that lacks one (instrument.go), so a guest in a tight
// loop, deep recursion or its start function stops as soon as the run's
// context ends. WASI clock sleeps (poll_oneoff) are routed through a sleep
// that also returns when the context ends, because wazero's own sleep does
// not. Linear memory is allocated through an allocator that refuses to grow
// past the run's memory limit and records the refusal.
package wazero

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"reflect"
	"runtime/debug"
	"strings"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/experimental"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"
	"github.com/tetratelabs/wazero/sys"

	"github.com/blockhost/blockhost/abi"
	"github.com/blockhost/blockhost/host/engine"
)

// Name is the name this engine registers under.
const Name = "wazero"

func init() { engine.Register(Name, New) }

// Engine is a wazero runtime with the host modules and WASI instantiated.
type Engine struct {
	rt         wazero.Runtime
	cache      wazero.CompilationCache
	baseConfig wazero.ModuleConfig
	version    string
}

var _ engine.Engine = (*Engine)(nil)

// New creates a wazero engine.
func New(ctx context.Context, cfg engine.Config) (engine.Engine, error) {
	rc := wazero.NewRuntimeConfig().WithCloseOnContextDone(true)
	var cache wazero.CompilationCache
	if cfg.CacheDir != "" {
		c, err := wazero.NewCompilationCacheWithDir(cfg.CacheDir)
		if err != nil {
			return nil, fmt.Errorf("wazero: compilation cache in %s: %w", cfg.CacheDir, err)
		}
		cache = c
		rc = rc.WithCompilationCache(c)
	}
	rt := wazero.NewRuntimeWithConfig(ctx, rc)
	e := &Engine{rt: rt, cache: cache, version: moduleVersion()}
	if _, err := wasi_snapshot_preview1.Instantiate(ctx, rt); err != nil {
		_ = e.Close(ctx)
		return nil, fmt.Errorf("wazero: instantiate WASI: %w", err)
	}
	for _, hm := range cfg.HostModules {
		b := rt.NewHostModuleBuilder(hm.Name)
		for _, hf := range hm.Functions {
			b.NewFunctionBuilder().
				WithGoModuleFunction(hostFunc(hf.Func), valueTypes(hf.Signature.Params), valueTypes(hf.Signature.Results)).
				WithName(hf.Name).
				Export(hf.Name)
		}
		if _, err := b.Instantiate(ctx); err != nil {
			_ = e.Close(ctx)
			return nil, fmt.Errorf("wazero: instantiate host module %q: %w", hm.Name, err)
		}
	}
	// Settings shared by every run; each run adds its streams and sleep.
	// The name is empty so one compiled module can be instantiated many
	// times at once, and no start function runs implicitly: the host calls
	// the entry points itself.
	e.baseConfig = wazero.NewModuleConfig().
		WithName("").
		WithStartFunctions().
		WithSysWalltime().
		WithSysNanotime().
		WithRandSource(rand.Reader)
	return e, nil
}

// hostFunc adapts an engine-neutral host function to wazero.
func hostFunc(f func(context.Context, engine.Memory, []uint64)) api.GoModuleFunc {
	return func(ctx context.Context, mod api.Module, stack []uint64) {
		// wazero answers a module without memory with a nil pointer inside a
		// non-nil interface.
		if mem := mod.Memory(); mem != nil && !reflect.ValueOf(mem).IsNil() {
			f(ctx, mem, stack)
			return
		}
		f(ctx, nil, stack)
	}
}

func valueTypes(ts []abi.ValueType) []api.ValueType {
	out := make([]api.ValueType, len(ts))
	for i, t := range ts {
		out[i] = api.ValueType(t) // abi uses the binary encoding, as wazero does
	}
	return out
}

func moduleVersion() string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, d := range bi.Deps {
			if d.Path == "github.com/tetratelabs/wazero" {
				return d.Version
			}
		}
	}
	return "unknown"
}

// Name implements engine.Engine.
func (e *Engine) Name() string { return Name }

// Version implements engine.Engine.
func (e *Engine) Version() string { return e.version }

// Compile implements engine.Engine.
func (e *Engine) Compile(ctx context.Context, wasm []byte) (engine.Module, error) {
	if err := precheck(wasm); err != nil {
		return nil, err
	}
	if instrumented, err := addEntryChecks(wasm); err == nil {
		wasm = instrumented
	}
	cm, err := e.rt.CompileModule(ctx, wasm)
	if err != nil {
		return nil, err
	}
	m := &module{e: e, cm: cm}
	for _, fd := range cm.ImportedFunctions() {
		mod, name, _ := fd.Import()
		m.imports = append(m.imports, engine.Import{
			Module: mod, Name: name, Kind: engine.KindFunc,
			Signature: abi.Signature{Params: abiTypes(fd.ParamTypes()), Results: abiTypes(fd.ResultTypes())},
		})
	}
	for _, md := range cm.ImportedMemories() {
		mod, name, _ := md.Import()
		m.imports = append(m.imports, engine.Import{Module: mod, Name: name, Kind: engine.KindMemory})
		m.minPages, m.hasMemory = md.Min(), true
	}
	for name, fd := range cm.ExportedFunctions() {
		m.exports = append(m.exports, engine.Export{Name: name, Kind: engine.KindFunc,
			Signature: abi.Signature{Params: abiTypes(fd.ParamTypes()), Results: abiTypes(fd.ResultTypes())}})
	}
	for name, md := range cm.ExportedMemories() {
		m.exports = append(m.exports, engine.Export{Name: name, Kind: engine.KindMemory})
		m.minPages, m.hasMemory = md.Min(), true
	}
	return m, nil
}

func abiTypes(ts []api.ValueType) []abi.ValueType {
	out := make([]abi.ValueType, len(ts))
	for i, t := range ts {
		out[i] = abi.ValueType(t)
	}
	return out
}

// Close implements engine.Engine.
func (e *Engine) Close(ctx context.Context) error {
	err := e.rt.Close(ctx)
	if e.cache != nil {
		err = errors.Join(err, e.cache.Close(ctx))
	}
	return err
}

type module struct {
	e         *Engine
	cm        wazero.CompiledModule
	imports   []engine.Import
	exports   []engine.Export
	minPages  uint32
	hasMemory bool
}

var _ engine.Module = (*module)(nil)

func (m *module) Imports() []engine.Import { return m.imports }
func (m *module) Exports() []engine.Export { return m.exports }
func (m *module) MinMemoryPages() (uint32, bool) {
	return m.minPages, m.hasMemory
}
func (m *module) Close(ctx context.Context) error { return m.cm.Close(ctx) }

const pageSize = 65536

// Run implements engine.Module.
func (m *module) Run(ctx context.Context, cfg engine.RunConfig) (res engine.RunResult, err error) {
	limit := cfg.MemoryLimit
	if limit == 0 || limit > 65536*pageSize {
		limit = 65536 * pageSize
	}
	if m.hasMemory && uint64(m.minPages)*pageSize > limit {
		res.MemoryLimitHit = true
		return res, nil
	}
	alloc := &allocator{limit: limit}
	ctx = experimental.WithMemoryAllocator(ctx, alloc)
	// slept is set when a WASI sleep was cut short by the end of ctx: the
	// guest then runs on briefly until wazero's next check, and whatever it
	// does in that time must not count as finishing.
	var slept bool
	defer func() {
		res.PeakMemory = alloc.peak
		res.MemoryLimitHit = alloc.hit
		if slept && err == nil {
			err = engine.ErrInterrupted
		}
	}()

	mc := m.e.baseConfig.
		WithArgs(cfg.Args...).
		WithNanosleep(func(ns int64) {
			if !sleep(ctx, ns) {
				slept = true
			}
		})
	if cfg.Stdin != nil {
		mc = mc.WithStdin(cfg.Stdin)
	}
	if cfg.Stdout != nil {
		mc = mc.WithStdout(cfg.Stdout)
	}
	if cfg.Stderr != nil {
		mc = mc.WithStderr(cfg.Stderr)
	}
	for _, kv := range cfg.Env {
		k, v, _ := strings.Cut(kv, "=")
		mc = mc.WithEnv(k, v)
	}
	if fsc := fsConfig(cfg.Dirs); fsc != nil {
		mc = mc.WithFSConfig(fsc)
	}

	inst, err := m.e.rt.InstantiateModule(ctx, m.cm, mc)
	if err != nil {
		return classify(ctx, res, err)
	}
	defer inst.Close(context.WithoutCancel(ctx))
	for _, name := range cfg.Entry {
		fn := inst.ExportedFunction(name)
		if fn == nil {
			return res, fmt.Errorf("wazero: entry point %q is not exported", name)
		}
		var params []uint64
		if n := len(fn.Definition().ParamTypes()); n > 0 {
			params = make([]uint64, n)
		}
		out, err := fn.Call(ctx, params...)
		if err != nil {
			return classify(ctx, res, err)
		}
		// The slice is wazero's, reused by its next call.
		res.Results = append(res.Results[:0], out...)
	}
	return res, nil
}

// classify turns a wazero error into the engine contract's terms.
func classify(ctx context.Context, res engine.RunResult, err error) (engine.RunResult, error) {
	var exit *sys.ExitError
	if errors.As(err, &exit) {
		switch exit.ExitCode() {
		case sys.ExitCodeContextCanceled, sys.ExitCodeDeadlineExceeded:
			return res, engine.ErrInterrupted
		}
		if ctx.Err() != nil {
			// The module was closed because the context ended, and the guest
			// happened to exit on the way; the interruption is what counts.
			return res, engine.ErrInterrupted
		}
		res.Exited, res.ExitCode = true, exit.ExitCode()
		return res, nil
	}
	if ctx.Err() != nil {
		return res, engine.ErrInterrupted
	}
	// A host function's trap comes wrapped in wazero's recovery message.
	if trap, ok := errors.AsType[*engine.Trap](err); ok {
		return res, trap
	}
	// wazero's trap errors are of an internal type: they are recognised by
	// their text, "wasm error: <trap>" followed by a stack trace, except a
	// stack overflow, which comes bare.
	msg := err.Error()
	if msg == stackOverflow {
		return res, &engine.Trap{Message: msg, StackOverflow: true}
	}
	if rest, ok := strings.CutPrefix(msg, "wasm error: "); ok {
		first, _, _ := strings.Cut(rest, "\n")
		return res, &engine.Trap{Message: first, StackOverflow: first == stackOverflow}
	}
	return res, err
}

const stackOverflow = "stack overflow"

// sleep pauses for ns nanoseconds or until ctx ends, whichever is first,
// and reports whether it slept the whole time.
func sleep(ctx context.Context, ns int64) bool {
	if ns <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(time.Duration(ns))
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		t.Stop()
		return false
	}
}

// allocator backs linear memory with a Go slice that never grows past
// limit. wazero calls it from the goroutine running the guest only.
type allocator struct {
	limit uint64
	peak  uint64
	hit   bool
}

func (a *allocator) Allocate(capacity, _ uint64) experimental.LinearMemory {
	return &linearMemory{a: a, capHint: min(capacity, a.limit)}
}

type linearMemory struct {
	a       *allocator
	buf     []byte
	capHint uint64
}

// Reallocate grows the memory to size bytes, or returns nil, which wazero
// turns into a failed memory.grow, when size is over the limit.
func (l *linearMemory) Reallocate(size uint64) []byte {
	if size > l.a.limit {
		l.a.hit = true
		return nil
	}
	if size > l.a.peak {
		l.a.peak = size
	}
	if size <= uint64(cap(l.buf)) {
		l.buf = l.buf[:size]
		return l.buf
	}
	// Grow by a quarter, within the limit, so that a guest growing page by
	// page does not copy its whole memory each time, yet a module that grows
	// once or twice (most do) does not pay for zeroing and collecting twice
	// the memory it uses: doubling cost a Go hello block 11% per step.
	newCap := max(size, l.capHint, min(size+size/4, l.a.limit))
	nb := make([]byte, size, newCap)
	copy(nb, l.buf)
	l.buf = nb
	return nb
}

func (l *linearMemory) Free() { l.buf = nil }
