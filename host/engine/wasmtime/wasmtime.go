//go:build cgo

package wasmtime

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"math"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bytecodealliance/wasmtime-go/v39"

	"github.com/blockhost/blockhost/abi"
	"github.com/blockhost/blockhost/host/engine"
	"github.com/blockhost/blockhost/host/engine/internal/datamerge"
	"github.com/blockhost/blockhost/host/engine/internal/diskcache"
	"github.com/blockhost/blockhost/host/engine/internal/inflight"
	"github.com/blockhost/blockhost/host/engine/wasip1"
)

func init() {
	engine.Register(Name, New)
	engine.RegisterCacheUse(Name, cacheUse)
}

// epochPeriod is how often the engine's ticker advances the epoch while
// runs are in flight. It bounds how late a run notices that its context
// ended if the immediate advance on cancellation were missed, and it is the
// granularity at which each running store calls the engine's epoch
// callback; at 1 ms that callback costs well under 0.1% of a core per run.
const epochPeriod = time.Millisecond

// settings describes the wasmtime configuration New applies. It is part of
// every disk-cache key: code compiled under other settings is never loaded.
const settings = "epoch-interruption;cranelift-speed;wasi-preview1;grow-hook-1;pooling-1;data-merge-2;no-cow;memory-image-1"

// Elsewhere than Linux (on Linux the engine makes memories itself and
// allocates instances on demand, memory.go), instances are allocated by
// wasmtime's pooling allocator: a fixed set of
// slots reserved when the engine is created, each memory slot a 4 GiB
// reservation plus guards that is reused from step to step instead of
// being mapped and unmapped each time, and of which the first 8 MiB stay
// resident (zeroed rather than returned to the kernel). A fresh-instance
// step of a Go block costs about 40% less than with wasmtime's default,
// on-demand allocation, whose time goes mostly to page faults and
// unmapping (docs/engines.md has the figures).
//
// The price is fixed capacity. pool allows 1000 instances, memories and
// tables at once; a run holds one instance (two before WASI's poll_oneoff
// moved to Go and needed no trampoline), so at most maxRuns runs hold slots and further
// runs wait for one, their context's deadline running. A module may define
// at most 4 memories and 4 tables of up to 2^20 elements. Resident memory
// kept for reuse is bounded by 32 warm slots of 8 MiB. The reservation is
// about 4 TiB of address space (New first checks that poolReservation's
// 5 TiB can be had); where it cannot (a ulimit -v, a small address space),
// New uses on-demand allocation, without those limits.
var pool = poolSize{
	instances: 1000, memories: 1000, tables: 1000,
	memoriesPerModule: 4, tablesPerModule: 4,
	warmSlots:     32,
	maxMemory:     4 << 30,
	tableElements: 1 << 20,
	instanceSize:  16 << 20,
	keepMemory:    8 << 20,
	keepTable:     64 << 10,
}

// hugePages is whether the pool's memories ask for transparent huge pages
// (hugepages.go); a variable so that benchmarks can compare. It is off:
// huge pages cut the CPU of a burst of Go guests in fresh slots (200
// interrupted sleeps: 2.5 s -> 1.5-1.9 s), but a steady stream of steps
// paid for them (a CLI batch of 2,000 hello steps at concurrency 2: 1.56x
// the CPU and 1.7x the wall time, paired medians; 10,000 steps: 5.2 s
// against 3.1 s), and a stream of steps is the common case
// (docs/benchmarks.md, RATIONALE.md).
var hugePages = false

// maxRuns is how many runs may hold pool slots at once.
const maxRuns = 500

// poolAvailable reports whether the pool's address space can be had; a
// variable so that tests can take the on-demand path.
var poolAvailable = func() bool { return canReserve(poolReservation(pool)) }

// poolReservation over-estimates the address space the pool reserves:
// each memory slot with guards on both sides, each table and instance
// slot, and a quarter more.
func poolReservation(p poolSize) uint64 {
	const guard = 32 << 20
	n := uint64(p.memories)*(p.maxMemory+2*guard) + uint64(p.tables)*p.tableElements*8 + uint64(p.instances)*p.instanceSize
	return n + n/4
}

// Engine is a wasmtime engine with WASI and the host modules linked.
type Engine struct {
	eng     *wasmtime.Engine
	version string
	cache   *diskCache
	// pooled is true when instances come from the pooling allocator; slots
	// then bounds the runs in flight to what the pool holds.
	pooled bool
	slots  chan struct{}
	// hugePool is the pool's memory reservation where the kernel accepted
	// to back it with transparent huge pages (hugepages.go).
	hugePool []mapping

	// life counts the engine's users: each module not yet freed (its
	// members), and each compilation in progress. The closer, the ticker,
	// the linker and the engine itself are released once it is closed and
	// idle (free): after the last run on any module has returned.
	life inflight.Set

	// linker resolves every import: WASI preview1, its file, stream and
	// poll functions replaced by package wasip1's, and the host modules.
	linker *wasmtime.Linker

	// retiring queues the stores of returned runs for the closer goroutine
	// (retire.go); retireMu guards sending against its closing.
	retiring     chan retired
	retireMu     sync.Mutex
	retireClosed bool
	closers      sync.WaitGroup

	// active counts runs in flight; the ticker advances the epoch only
	// while it is above zero, and wake tells it a first run began.
	active atomic.Int64
	// deletedInline counts the stores runs deleted themselves, every CPU
	// being busy or the closer behind (retire.go), for this package's
	// tests; closerGate, when set, is a channel the closer receives from
	// before each deletion, for them too.
	deletedInline atomic.Int64
	closerGate    atomic.Pointer[chan struct{}]
	wake          chan struct{}
	done          chan struct{}
	ticker        sync.WaitGroup
}

var _ engine.Engine = (*Engine)(nil)

// New creates a wasmtime engine.
func New(_ context.Context, cfg engine.Config) (engine.Engine, error) {
	if err := checkLayout(); err != nil {
		return nil, err
	}
	wc, pooled := baseConfig()
	var before []mapping
	if pooled {
		before = mappings()
	}
	eng := wasmtime.NewEngineWithConfig(wc)
	e := &Engine{
		eng:      eng,
		version:  moduleVersion(),
		pooled:   pooled,
		wake:     make(chan struct{}, 1),
		done:     make(chan struct{}),
		retiring: make(chan retired, retireQueue),
	}
	e.slots = make(chan struct{}, maxRuns)
	e.life.Init(e.free)
	if pooled {
		if hugePages {
			e.hugePool = adviseHugePages(before, hugePoolMin(pool))
		}
	}
	if cfg.CacheDir != "" {
		e.cache = openDiskCache(cfg.Logger, cfg.CacheDir, e.version)
	}
	if err := e.checkStore(); err != nil {
		e.eng.Close()
		return nil, err
	}
	if err := e.link(cfg.HostModules); err != nil {
		e.eng.Close()
		return nil, err
	}
	e.ticker.Add(1)
	go e.tick()
	e.closers.Add(1)
	go e.closer()
	return e, nil
}

// BaseConfig returns a new wasmtime configuration with wasmtime's own
// fastest settings for a host that must be able to stop a guest: epoch
// interruption, Cranelift optimizing for speed, and the pooling allocator
// where the address space allows, with memories left to wasmtime (its
// copy-on-write images may be turned on). It is there so that a bare
// wasmtime embedding can be measured against the engine, as
// host/bench_engines_test.go does. The engine itself makes its memories
// where it can (memory.go), which wasmtime allows only with on-demand
// allocation and without copy-on-write images.
func BaseConfig() *wasmtime.Config {
	c, _ := configure(false)
	return c
}

func baseConfig() (c *wasmtime.Config, pooled bool) { return configure(memoryCreator) }

func configure(ownMemory bool) (c *wasmtime.Config, pooled bool) {
	c = wasmtime.NewConfig()
	c.SetEpochInterruption(true)
	c.SetCraneliftOptLevel(wasmtime.OptLevelSpeed)
	// Memories start as the module's image split out at load (memory.go)
	// or, in the pool, as plain copies of the module's data (merged at
	// load, package datamerge), never as wasmtime's copy-on-write mappings
	// of an image. With the pool keeping slots resident, a copy-on-write
	// image makes every reset rewrite the image's pages in place, and each
	// page the guest had only read is then copied by the kernel with a TLB
	// shootdown across the process's threads: about 25 ms per step when
	// many Go guests end at once in fresh slots (docs/benchmarks.md, issue
	// 9), against a plain copy of the data and a memset of the used pages.
	// With the engine's own memories wasmtime would abort the process on
	// the first instance were they on.
	c.SetMemoryInitCOWSet(false)
	if ownMemory {
		useMemoryCreator(c)
		return c, false
	}
	// wasmtime aborts the process if it cannot reserve the pool, so the
	// reservation is tried first.
	if pooled = poolAvailable(); pooled {
		usePooling(c, pool)
	}
	return c, pooled
}

func (e *Engine) checkStore() error {
	s := wasmtime.NewStore(e.eng)
	defer s.Close()
	return checkStore(s)
}

func (e *Engine) link(hostModules []engine.HostModule) error {
	e.linker = wasmtime.NewLinker(e.eng)
	if err := e.linker.DefineWasi(); err != nil {
		return fmt.Errorf("wasmtime: define WASI: %w", err)
	}
	// wasmtime's WASI keeps arguments, environment, clocks and random;
	// proc_exit is the engine's (procExit); every file, stream and poll function is the engine-neutral
	// layer's (package wasip1), linked over wasmtime's own.
	e.linker.AllowShadowing(true)
	for _, hf := range wasip1.Functions() {
		if err := e.linker.FuncNew(wasiModule, hf.Name, funcType(hf.Signature), hostFunc(hf)); err != nil {
			return fmt.Errorf("wasmtime: define WASI function %q: %w", hf.Name, err)
		}
	}
	exitType := wasmtime.NewFuncType([]*wasmtime.ValType{wasmtime.NewValType(wasmtime.KindI32)}, nil)
	if err := e.linker.FuncNew(wasiModule, "proc_exit", exitType, procExit); err != nil {
		return fmt.Errorf("wasmtime: define WASI function \"proc_exit\": %w", err)
	}
	e.linker.AllowShadowing(false)
	for _, hm := range hostModules {
		for _, hf := range hm.Functions {
			if err := e.linker.FuncNew(hm.Name, hf.Name, funcType(hf.Signature), hostFunc(hf)); err != nil {
				return fmt.Errorf("wasmtime: define host function %q.%q: %w", hm.Name, hf.Name, err)
			}
		}
	}
	return nil
}

const wasiModule = "wasi_snapshot_preview1"

// tick advances the epoch every epochPeriod while runs are in flight. It
// parks after idleTicks periods with no run, and begin wakes it; while it
// ticks it does not listen for begin, so that a steady stream of steps
// costs no wake-up per step.
func (e *Engine) tick() {
	defer e.ticker.Done()
	t := time.NewTicker(epochPeriod)
	defer t.Stop()
	for idle := idleTicks; ; {
		if idle >= idleTicks {
			t.Stop()
			select {
			case <-e.wake:
			case <-e.done:
				return
			}
			idle = 0
			t.Reset(epochPeriod)
		}
		select {
		case <-t.C:
			if e.active.Load() > 0 {
				e.eng.IncrementEpoch()
				idle = 0
			} else {
				idle++
			}
		case <-e.done:
			return
		}
	}
}

// idleTicks is how many periods without a run the ticker waits before it
// parks: a second.
const idleTicks = int(time.Second / epochPeriod)

// begin and end bracket a run for the ticker.
func (e *Engine) begin() {
	if e.active.Add(1) == 1 {
		select {
		case e.wake <- struct{}{}:
		default:
		}
	}
}

func (e *Engine) end() { e.active.Add(-1) }

// interrupt advances the epoch now, so that every running store checks
// its context at its next function entry or loop back-edge.
func (e *Engine) interrupt() { e.eng.IncrementEpoch() }

// libraryVersion is the version of the wasmtime library that wasmtime-go
// v39.0.1 links (its include/wasmtime.h, WASMTIME_VERSION); a test checks
// it against the header.
const libraryVersion = "39.0.0"

// moduleVersion is the wasmtime-go module's version when the binary
// records it (test binaries do not).
func moduleVersion() string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, d := range bi.Deps {
			if d.Path == "github.com/bytecodealliance/wasmtime-go/v39" {
				if d.Replace != nil {
					return d.Replace.Version
				}
				return d.Version
			}
		}
	}
	return "v39 (wasmtime " + libraryVersion + ")"
}

// Name implements engine.Engine.
func (e *Engine) Name() string { return Name }

// Version implements engine.Engine.
func (e *Engine) Version() string { return e.version }

// Close implements engine.Engine. It closes every module the engine
// compiled; once the last run on them has returned, it waits until the
// stores of returned runs are deleted, stops the ticker (which runs in
// flight need, to be interrupted) and releases the engine.
func (e *Engine) Close(ctx context.Context) error {
	e.life.Close()
	if err := e.life.Wait(ctx); err != nil {
		return fmt.Errorf("wasmtime: close: %d modules still running: %w", e.life.Len(), err)
	}
	return nil
}

// free releases the engine, once no module or compilation uses it.
func (e *Engine) free() error {
	e.stopCloser()
	close(e.done)
	e.ticker.Wait()
	e.linker.Close()
	e.eng.Close()
	return nil
}

// BorrowsModules implements engine.Borrower: Compile keeps nothing of the
// bytes it is given. wasmtime copies what it compiles or deserializes,
// the memory image is copied into a memory file (newMemImage) or the
// cache entry (joinPayload), and the rest is read from the module, not
// referred to (hookGrow). TestCompile_borrowed frees the bytes once
// Compile returns and runs the module.
func (e *Engine) BorrowsModules() {}

var _ engine.Borrower = (*Engine)(nil)

// Compile implements engine.Engine.
func (e *Engine) Compile(ctx context.Context, wasm []byte) (_ engine.Module, err error) {
	if err := ctx.Err(); err != nil {
		return nil, context.Cause(ctx)
	}
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
	m := &module{e: e}
	m.runs.Init(m.free)
	var sum diskcache.Sum
	if e.cache != nil {
		sum = sha256.Sum256(wasm)
		var img []byte
		var release func()
		m.mod, img, release = e.cache.load(e.eng, sum)
		if m.mod != nil {
			if _, info, err := hookGrow(wasm, false); err == nil {
				m.info, m.analysed = info, true
			}
			// The cached code was compiled from the module with its data
			// split out (below), into the image stored with it.
			image, err := newMemImage(img)
			release()
			if err != nil {
				m.mod.Close()
				return nil, err
			}
			m.image = image
		}
	}
	if m.mod == nil {
		src, rewritten := wasm, false
		if hooked, info, err := hookGrow(wasm, true); err == nil {
			src, m.info, m.analysed, rewritten = hooked, info, true, true
		}
		if merged, ok := mergeData(src); ok {
			src, rewritten = merged, true
		}
		var img []byte
		if stripped, image := splitData(src); image != nil {
			src, img, rewritten = stripped, image, true
		}
		mod, err := wasmtime.NewModule(e.eng, src)
		if err != nil && rewritten {
			// The rewrites are meant to keep every valid module valid; should
			// they not, the module is compiled as it came, limited by the
			// store limiter alone.
			src, img, m.info, m.analysed = wasm, nil, growInfo{}, false
			mod, err = wasmtime.NewModule(e.eng, src)
		}
		if err != nil {
			return nil, errors.New(trimError(err))
		}
		m.mod = mod
		if m.image, err = newMemImage(img); err != nil {
			mod.Close()
			return nil, err
		}
		if e.cache != nil && m.analysed {
			e.cache.store(mod, img, sum)
		}
	}
	m.describe()
	for _, mi := range m.info.memories {
		m.memoryExports = append(m.memoryExports, mi.export)
	}
	if !e.life.Add(&m.runs) {
		// Close began during the compilation and did not see this module.
		m.runs.Close() // frees it, which lets the engine go
		return nil, engine.ErrClosed
	}
	return m, nil
}

// free releases the module once no run uses it, and lets the engine go.
// The stores of its returned runs may still wait for the closer: the
// image stays alive until their memories are freed (memory.c), and
// wasmtime's module until their instances are.
func (m *module) free() error {
	m.mod.Close()
	m.image.close()
	m.e.life.Remove(&m.runs)
	return nil
}

// describe lists the module's imports and exports, hiding those the
// rewrite added.
func (m *module) describe() {
	for _, it := range m.mod.Imports() {
		name := ""
		if n := it.Name(); n != nil {
			name = *n
		}
		im := engine.Import{Module: it.Module(), Name: name}
		et := it.Type()
		switch {
		case et.FuncType() != nil:
			ft := et.FuncType()
			im.Kind = engine.KindFunc
			im.Signature = abi.Signature{Params: abiTypes(ft.Params()), Results: abiTypes(ft.Results())}
		case et.MemoryType() != nil:
			im.Kind = engine.KindMemory
			m.noteMemory(et.MemoryType())
		case et.TableType() != nil:
			im.Kind = engine.KindTable
		default:
			im.Kind = engine.KindGlobal
		}
		m.imports = append(m.imports, im)
	}
	for _, xt := range m.mod.Exports() {
		if xt.Name() == wasiMemoryExport && m.info.exportedMemory {
			continue
		}
		if strings.HasPrefix(xt.Name(), hookExportPrefix) {
			if xt.Name() == refusedExport {
				m.info.hooked = true
			}
			continue
		}
		ex := engine.Export{Name: xt.Name()}
		et := xt.Type()
		switch {
		case et.FuncType() != nil:
			ft := et.FuncType()
			ex.Kind = engine.KindFunc
			ex.Signature = abi.Signature{Params: abiTypes(ft.Params()), Results: abiTypes(ft.Results())}
		case et.MemoryType() != nil:
			ex.Kind = engine.KindMemory
			m.noteMemory(et.MemoryType())
		case et.TableType() != nil:
			ex.Kind = engine.KindTable
		default:
			ex.Kind = engine.KindGlobal
		}
		m.exports = append(m.exports, ex)
	}
}

// abiTypes converts wasmtime value types to the binary encoding abi uses.
func abiTypes(ts []*wasmtime.ValType) []abi.ValueType {
	out := make([]abi.ValueType, len(ts))
	for i, t := range ts {
		switch t.Kind() {
		case wasmtime.KindI32:
			out[i] = abi.I32
		case wasmtime.KindI64:
			out[i] = abi.I64
		case wasmtime.KindF32:
			out[i] = 0x7d
		case wasmtime.KindF64:
			out[i] = 0x7c
		case wasmtime.KindFuncref:
			out[i] = 0x70
		case wasmtime.KindExternref:
			out[i] = 0x6f
		default:
			out[i] = 0x7b // v128
		}
	}
	return out
}

func valKind(t abi.ValueType) wasmtime.ValKind {
	switch t {
	case abi.I64:
		return wasmtime.KindI64
	case 0x7d:
		return wasmtime.KindF32
	case 0x7c:
		return wasmtime.KindF64
	}
	return wasmtime.KindI32
}

func funcType(sig abi.Signature) *wasmtime.FuncType {
	vt := func(ts []abi.ValueType) []*wasmtime.ValType {
		out := make([]*wasmtime.ValType, len(ts))
		for i, t := range ts {
			out[i] = wasmtime.NewValType(valKind(t))
		}
		return out
	}
	return wasmtime.NewFuncType(vt(sig.Params), vt(sig.Results))
}

// hostFunc adapts an engine-neutral host function to wasmtime. The run's
// context and memory come from the store's data. A function that stops
// when done ends the run with a trap once the context has ended.
func hostFunc(hf engine.HostFunction) func(*wasmtime.Caller, []wasmtime.Val) ([]wasmtime.Val, *wasmtime.Trap) {
	params, results, stop := hf.Signature.Params, hf.Signature.Results, hf.StopWhenDone
	return func(c *wasmtime.Caller, args []wasmtime.Val) (_ []wasmtime.Val, trap *wasmtime.Trap) {
		r, ok := c.Data().(*run)
		if !ok {
			return nil, wasmtime.NewTrap("blockhost: host function called outside a run")
		}
		defer func() {
			// A host function traps by panicking with an *engine.Trap; the
			// run keeps it so that Run returns it as it was.
			if p := recover(); p != nil {
				t, ok := p.(*engine.Trap)
				if !ok {
					panic(p)
				}
				r.hostTrap = t
				trap = wasmtime.NewTrap(t.Message)
			}
		}()
		var stack []uint64
		if n := max(len(params), len(results)); n <= len(r.stack) {
			stack = r.stack[:n]
			clear(stack)
		} else {
			stack = make([]uint64, n)
		}
		for i, a := range args {
			switch a.Kind() {
			case wasmtime.KindI32:
				stack[i] = uint64(uint32(a.I32()))
			case wasmtime.KindI64:
				stack[i] = uint64(a.I64())
			case wasmtime.KindF32:
				stack[i] = uint64(math.Float32bits(a.F32()))
			case wasmtime.KindF64:
				stack[i] = math.Float64bits(a.F64())
			}
		}
		if stop && r.ctx.Err() != nil {
			r.slept.Store(true)
			return nil, wasmtime.NewTrap(trapInterrupted)
		}
		var mem engine.Memory
		if m := r.memoryOf(c); m != nil {
			mem = m
		}
		hf.Func(r.ctx, mem, stack)
		if stop && r.ctx.Err() != nil {
			r.slept.Store(true)
			return nil, wasmtime.NewTrap(trapInterrupted)
		}
		out := make([]wasmtime.Val, len(results))
		for i, t := range results {
			switch t {
			case abi.I64:
				out[i] = wasmtime.ValI64(int64(stack[i]))
			case 0x7d:
				out[i] = wasmtime.ValF32(math.Float32frombits(uint32(stack[i])))
			case 0x7c:
				out[i] = wasmtime.ValF64(math.Float64frombits(stack[i]))
			default:
				out[i] = wasmtime.ValI32(int32(uint32(stack[i])))
			}
		}
		return out, nil
	}
}

// The engine instantiates with memory_init_cow off (see baseConfig), so
// wasmtime copies a module's data segments into each new instance one by
// one, and a Go module has about 40,000 of them: the engine merges them at
// load (package datamerge).

// mergeGap is the largest run of zeros between two segments that is
// written out to join them; a wider gap keeps them apart, so that a sparse
// module does not grow.
const mergeGap = 4096

// mergeData returns wasm with its data segments merged and true, or wasm
// itself and false when the merge leaves it as it is or cannot read it.
// splitData splits the data out of wasm into its memory image where the
// engine makes memories itself (memory.go); elsewhere it leaves wasm as
// it is.
func splitData(wasm []byte) ([]byte, []byte) {
	if !memoryCreator {
		return wasm, nil
	}
	return datamerge.SplitImage(wasm)
}

func mergeData(wasm []byte) ([]byte, bool) {
	out, err := datamerge.Merge(wasm, mergeGap)
	if err != nil || len(out) == 0 || len(wasm) == 0 || &out[0] == &wasm[0] {
		return wasm, false // Merge returns its input itself when it changes nothing
	}
	return out, true
}
