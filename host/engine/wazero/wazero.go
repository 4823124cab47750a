// Package wazero is the default blockhost engine: github.com/tetratelabs/wazero,
// pure Go, no cgo. Importing it registers the engine under the name
// "wazero".
//
// Interruption is the engine's own: every module is rewritten at compile
// time with a flag and a budget of checks that Run sets and empties when
// the run's context ends, checked at the entry of every function and
// every loop (instrument.go), so a guest in a tight loop, deep recursion
// or its start function stops within a thousand checks of the context's
// end. (wazero's close-on-context-done mode called into Go at every
// check, 30 times the cost of a tight loop.) WASI's file, stream and poll functions are the
// engine-neutral ones of package wasip1, linked over wazero's own: a sleep
// (poll_oneoff) returns when the context ends, and any of them entered, or
// returning, after the end ends the run instead of returning to the guest.
//
// Linear memory comes from an allocator that refuses to grow past the
// run's memory limit and records the refusal (memory.go). A module's
// active data segments are laid out once, at compile time, into an image
// of its initial memory (image.go); on Linux each instance's memory is a
// range mapping that image copy-on-write, reused from run to run of the
// module after the pages a run changed are restored, so that a step costs
// the pages it writes rather than the size of its memory. Every instance
// still starts from exactly the memory its data segments describe.
//
// Before compiling, the engine also merges a module's data segments where
// that cannot change what instantiation writes (host/engine/internal/datamerge), moves
// its start function out of instantiation (startfn.go), and, where only
// call_indirect reaches a module's function table, has each entry filled
// at its first call instead of every entry at instantiation
// (lazytable.go: three quarters of a Go block's step was wazero filling
// its table). At most GOMAXPROCS
// instantiations run at once; no guest code runs during one, and a step
// whose context ends while it waits for its turn ends then, interrupted.
//
// With a cache directory, compiled code is kept in entries the engine
// checks before wazero sees them (cache.go): an entry of another module,
// engine version or configuration, or a damaged one, is never loaded, and
// neither a bad entry nor an unusable directory ever fails a compilation.
//
// Closing a module or the engine waits for the runs in flight on it to
// return (as long as Close's context allows) and frees nothing they use:
// a module's memory pool and compiled code, and the engine's runtimes, are
// released by whichever of Close or the last run leaves them unused
// (host/engine/internal/inflight). A Run that starts once its module or
// engine is closing returns engine.ErrClosed, and runs nothing.
package wazero

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"reflect"
	"runtime"
	"runtime/debug"
	"strings"
	"sync"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/experimental"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"
	"github.com/tetratelabs/wazero/sys"

	"github.com/blockhost/blockhost/abi"
	"github.com/blockhost/blockhost/host/engine"
	"github.com/blockhost/blockhost/host/engine/internal/datamerge"
	"github.com/blockhost/blockhost/host/engine/internal/diskcache"
	"github.com/blockhost/blockhost/host/engine/internal/inflight"
	"github.com/blockhost/blockhost/host/engine/wasip1"
)

// Name is the name this engine registers under.
const Name = "wazero"

func init() {
	engine.Register(Name, New)
	engine.RegisterCacheUse(Name, cacheUse)
}

// Engine is a wazero runtime with the host modules and WASI instantiated.
type Engine struct {
	// rt is the runtime modules are compiled on: through the disk cache
	// when there is one (cache.go), else plain.
	rt wazero.Runtime
	// plain is the runtime without a disk cache, rt itself when there is
	// no cache, else created when a compilation must bypass the cache.
	plainMu       sync.Mutex
	plain         wazero.Runtime
	runtimeConfig wazero.RuntimeConfig
	hostModules   []engine.HostModule

	disk       *diskCache
	baseConfig wazero.ModuleConfig
	version    string

	// slots holds one token per instantiation in progress, at most
	// GOMAXPROCS. Instantiating a Go module is milliseconds of CPU; when
	// hundreds of steps start at once, all of them instantiating side by
	// side share the CPU fairly and all finish late, past the deadlines
	// of many, and the memory of every half-built instance is live at
	// once. In turns, each is done in its own few milliseconds, and a step
	// whose deadline passes while it waits ends then, without
	// instantiating. No guest code runs while a slot is held (exportStart).
	slots chan struct{}

	// life counts the engine's users: each module not yet freed (its
	// members), and each compilation in progress. The runtimes are closed
	// once it is closed and idle (free).
	life inflight.Set
}

var _ engine.Engine = (*Engine)(nil)

// New creates a wazero engine.
func New(ctx context.Context, cfg engine.Config) (engine.Engine, error) {
	e := &Engine{
		slots:         make(chan struct{}, runtime.GOMAXPROCS(0)),
		runtimeConfig: wazero.NewRuntimeConfig(),
		hostModules:   cfg.HostModules,
		version:       moduleVersion(),
	}
	e.life.Init(e.free)
	rc := e.runtimeConfig
	if cfg.CacheDir != "" {
		if e.disk = openDiskCache(cfg.Logger, cfg.CacheDir, e.version); e.disk != nil {
			rc = rc.WithCompilationCache(e.disk.cc)
		}
	}
	rt, err := newRuntime(ctx, rc, cfg.HostModules)
	if err != nil {
		if e.disk != nil {
			e.disk.close(ctx)
		}
		return nil, err
	}
	e.rt = rt
	if e.disk == nil {
		e.plain = rt
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

// newRuntime creates a runtime with WASI and the host modules. WASI
// preview1 is wazero's own functions for arguments, environment, clocks,
// random and exit, and the engine-neutral layer (package wasip1) for every
// file, directory, stream and poll function, which replaces wazero's of the
// same name (the builder keeps the last export of a name).
func newRuntime(ctx context.Context, rc wazero.RuntimeConfig, hostModules []engine.HostModule) (wazero.Runtime, error) {
	rt := wazero.NewRuntimeWithConfig(ctx, rc)
	wasi := rt.NewHostModuleBuilder(wasip1.ModuleName)
	wasi_snapshot_preview1.NewFunctionExporter().ExportFunctions(wasi)
	modules := append([]engine.HostModule{{Name: wasip1.ModuleName, Functions: wasip1.Functions()}}, hostModules...)
	for i, hm := range modules {
		b := wasi
		if i > 0 {
			b = rt.NewHostModuleBuilder(hm.Name)
		}
		for _, hf := range hm.Functions {
			b.NewFunctionBuilder().
				WithGoModuleFunction(hostFunc(hf), valueTypes(hf.Signature.Params), valueTypes(hf.Signature.Results)).
				WithName(hf.Name).
				Export(hf.Name)
		}
		if _, err := b.Instantiate(ctx); err != nil {
			_ = rt.Close(ctx)
			return nil, fmt.Errorf("wazero: instantiate host module %q: %w", hm.Name, err)
		}
	}
	return rt, nil
}

// hostFunc adapts an engine-neutral host function to wazero. A function
// that stops when done ends the run by panicking with errStepOver, which
// wazero turns into the error the call returns (classify sees the
// context's end).
func hostFunc(hf engine.HostFunction) api.GoModuleFunc {
	f, stop := hf.Func, hf.StopWhenDone
	return func(ctx context.Context, mod api.Module, stack []uint64) {
		if stop && ctx.Err() != nil {
			panic(errStepOver)
		}
		// wazero answers a module without memory with a nil pointer inside a
		// non-nil interface; a module that had none has the empty one
		// the interruption checks need (instrument.go).
		if mem := mod.Memory(); mem != nil && !reflect.ValueOf(mem).IsNil() &&
			(mem.Size() > 0 || mod.ExportedMemory(memoryExport) == nil) {
			f(ctx, mem, stack)
		} else {
			f(ctx, nil, stack)
		}
		if stop && ctx.Err() != nil {
			panic(errStepOver)
		}
	}
}

// errStepOver ends a run from inside a host function.
var errStepOver = errors.New("wazero: the step is over")

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

// mergeGap is the widest gap, in bytes, filled with zeros to merge two
// data segments: copying that many zeros costs wazero about as much as
// evaluating one more segment's offset at instantiation.
const mergeGap = 1024

// mergeData is datamerge.Merge with wazero's gap.
func mergeData(wasm []byte) ([]byte, error) { return datamerge.Merge(wasm, mergeGap) }

// compilePrepared compiles src, prepared from the module whose SHA-256 is
// sum, through the disk cache when there is one, and returns the runtime
// the module belongs to.
func (e *Engine) compilePrepared(ctx context.Context, sum diskcache.Sum, src []byte) (wazero.CompiledModule, wazero.Runtime, error) {
	if e.disk != nil {
		return e.compileCached(ctx, sum, src)
	}
	cm, err := compileModule(ctx, e.rt, src)
	return cm, e.rt, err
}

// Compile implements engine.Engine.
func (e *Engine) Compile(ctx context.Context, wasm []byte) (_ engine.Module, err error) {
	if err := engine.CheckHeader(wasm); err != nil {
		return nil, err
	}
	if !e.life.Enter() {
		return nil, engine.ErrClosed
	}
	// The compilation holds the engine; a module compiled holds it until
	// it is freed.
	defer func() {
		if err != nil {
			e.life.Leave()
		}
	}()
	var sum diskcache.Sum
	if e.disk != nil {
		sum = sha256.Sum256(wasm)
	}
	p, release, cached, err := e.prepare(ctx, wasm, sum)
	if err != nil {
		return nil, err
	}
	cm, rt, err := e.compilePrepared(ctx, sum, p.src)
	release()
	if err != nil && cached {
		// A prepared module from the cache that does not compile is the
		// cache's fault, not the module's: it is refused, and the module
		// prepared again.
		e.disk.prepared.Reject(preparedSum(sum), fmt.Errorf("wazero could not compile it: %w", err))
		if p, err = e.prepareFresh(ctx, wasm); err == nil {
			cm, rt, err = e.compilePrepared(ctx, sum, p.src)
			cached = false
		}
	}
	if err != nil {
		return nil, err
	}
	start, img := p.start, p.img
	if _, added := cm.ExportedMemories()[memoryExport]; added {
		// The rewrite gave the module a memory, which would make valid
		// an invalid module's use of one: the module as it came must
		// compile too.
		if verr := e.validate(ctx, wasm); verr != nil {
			cm.Close(ctx)
			return nil, verr
		}
	}
	if !cached {
		e.storePrepared(sum, p)
	}
	m := &module{e: e, rt: rt, cm: cm, start: start, mem: newMemPool(img)}
	m.runs.Init(m.free)
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
		if start && name == startExport {
			continue
		}
		m.exports = append(m.exports, engine.Export{Name: name, Kind: engine.KindFunc,
			Signature: abi.Signature{Params: abiTypes(fd.ParamTypes()), Results: abiTypes(fd.ResultTypes())}})
	}
	for name, md := range cm.ExportedMemories() {
		if name == memoryExport {
			continue
		}
		m.exports = append(m.exports, engine.Export{Name: name, Kind: engine.KindMemory})
		m.minPages, m.hasMemory = md.Min(), true
	}
	if !e.life.Add(&m.runs) {
		// Close began during the compilation and did not see this module.
		m.runs.Close() // frees it, which lets the engine go
		return nil, engine.ErrClosed
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

// Close implements engine.Engine. It closes every module the engine
// compiled, and the runtimes once the last run on them has returned.
func (e *Engine) Close(ctx context.Context) error {
	e.life.Close()
	if err := e.life.Wait(ctx); err != nil {
		return fmt.Errorf("wazero: close: %d modules still running: %w", e.life.Len(), err)
	}
	return nil
}

// free closes the runtimes, once nothing uses them.
func (e *Engine) free() error {
	ctx := context.Background()
	err := e.rt.Close(ctx)
	e.plainMu.Lock()
	if e.plain != nil && e.plain != e.rt {
		err = errors.Join(err, e.plain.Close(ctx))
	}
	e.plainMu.Unlock()
	if e.disk != nil {
		err = errors.Join(err, e.disk.close(ctx))
	}
	return err
}

type module struct {
	e *Engine
	// rt is the runtime the module was compiled on, and runs on: e.rt, or
	// the runtime without a disk cache (cache.go).
	rt        wazero.Runtime
	cm        wazero.CompiledModule
	imports   []engine.Import
	exports   []engine.Export
	minPages  uint32
	hasMemory bool
	// start is true when the module's start function is exported as
	// startExport, for Run to call (exportStart).
	start bool
	// mem is where instances' memories come from (memory.go), starting
	// as the image of the data segments wazero no longer sees (image.go),
	// if any.
	mem *memPool
	// runs counts the runs in flight; the pool and the compiled code are
	// freed once it is closed and idle (free).
	runs inflight.Gate
}

var _ engine.Module = (*module)(nil)

func (m *module) Imports() []engine.Import { return m.imports }
func (m *module) Exports() []engine.Export { return m.exports }
func (m *module) MinMemoryPages() (uint32, bool) {
	return m.minPages, m.hasMemory
}

// Close implements engine.Module.
func (m *module) Close(ctx context.Context) error {
	m.runs.Close()
	if err := m.runs.Wait(ctx); err != nil {
		return fmt.Errorf("wazero: close: %d runs in flight: %w", m.runs.InFlight(), err)
	}
	return nil
}

// compileModule is rt.CompileModule with a panic in wazero's compiler
// made an error: a module wazero's validator takes and its compiler
// cannot (wazero v1.12.0 misreads some instructions, instrument.go) must
// fail its compilation, not the host. The recover reaches the panic because the
// engine never asks wazero for compilation workers
// (experimental.WithCompilationWorkers): wazero compiles on the caller's
// goroutine.
func compileModule(ctx context.Context, rt wazero.Runtime, src []byte) (cm wazero.CompiledModule, err error) {
	defer func() {
		if r := recover(); r != nil {
			cm, err = nil, fmt.Errorf("wazero could not compile the module: %v", r)
		}
	}()
	return rt.CompileModule(ctx, src)
}

// validate compiles wasm as it is, without the disk cache, and reports
// wazero's error if it is not a valid module.
func (e *Engine) validate(ctx context.Context, wasm []byte) error {
	cm, _, err := e.compilePlain(ctx, wasm)
	if err != nil {
		return err
	}
	return cm.Close(ctx)
}

// free releases the module once no run uses it, and lets the engine go.
func (m *module) free() error {
	m.mem.close()
	err := m.cm.Close(context.Background())
	m.e.life.Remove(&m.runs)
	return err
}

const pageSize = 65536

// Run implements engine.Module.
func (m *module) Run(ctx context.Context, cfg engine.RunConfig) (res engine.RunResult, err error) {
	if !m.runs.Enter() {
		return res, engine.ErrClosed
	}
	// Last of all: the module may be freed as the run leaves.
	defer m.runs.Leave()
	limit := cfg.MemoryLimit
	if limit == 0 || limit > 65536*pageSize {
		limit = 65536 * pageSize
	}
	if m.hasMemory && uint64(m.minPages)*pageSize > limit {
		res.MemoryLimitHit = true
		return res, nil
	}
	alloc := &allocator{limit: limit, pool: m.mem}
	ctx = experimental.WithMemoryAllocator(ctx, alloc)
	defer func() {
		// Last, after the instance is closed: no guest code runs any more.
		alloc.release()
		res.PeakMemory = alloc.peak
		res.MemoryLimitHit = alloc.hit
	}()
	// Descriptors, streams and directories are the wasip1 layer's.
	wasi := wasip1.New(cfg)
	defer wasi.Close()
	ctx = wasip1.With(ctx, wasi)

	mc := m.e.baseConfig.WithArgs(cfg.Args...)
	for _, kv := range cfg.Env {
		k, v, _ := strings.Cut(kv, "=")
		mc = mc.WithEnv(k, v)
	}

	inst, err := m.instantiate(ctx, mc)
	if err != nil {
		return classify(ctx, res, err)
	}
	defer inst.Close(context.WithoutCancel(ctx))
	// The guest checks the flag when its budget of checks is spent
	// (instrument.go); both are set from the context's own goroutine,
	// which may run after the run returned: writes into an instance no
	// longer used.
	flag, _ := inst.ExportedGlobal(interruptExport).(api.MutableGlobal)
	budget, _ := inst.ExportedGlobal(budgetExport).(api.MutableGlobal)
	if flag != nil && budget != nil {
		defer context.AfterFunc(ctx, func() {
			flag.Set(1)
			budget.Set(0)
		})()
	}
	if ctx.Err() != nil {
		// Ended while instantiating: AfterFunc sets the flag from a
		// goroutine of its own, perhaps only after the guest has run.
		return res, engine.ErrInterrupted
	}
	if m.start {
		if _, err := inst.ExportedFunction(startExport).Call(ctx); err != nil {
			return classify(ctx, res, err)
		}
	}
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
	if cfg.Capture != nil {
		return res, cfg.Capture(instance{inst})
	}
	return res, nil
}

// instantiate instantiates the module in its turn (Engine.slots); a step
// whose context ends first never instantiates.
func (m *module) instantiate(ctx context.Context, mc wazero.ModuleConfig) (api.Module, error) {
	select {
	case m.e.slots <- struct{}{}:
	case <-ctx.Done():
		return nil, engine.ErrInterrupted
	}
	defer func() { <-m.e.slots }()
	return m.rt.InstantiateModule(ctx, m.cm, mc)
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
