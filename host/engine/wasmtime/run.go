//go:build cgo

package wasmtime

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"strings"
	"sync/atomic"

	"github.com/bytecodealliance/wasmtime-go/v39"

	"github.com/blockhost/blockhost/host/engine"
	"github.com/blockhost/blockhost/host/engine/internal/inflight"
	"github.com/blockhost/blockhost/host/engine/wasip1"
)

type module struct {
	e   *Engine
	mod *wasmtime.Module
	// info describes the module's memories and whether its memory.grow
	// failures are recorded (growhook.go); analysed is false when the
	// module could not be read, and the engine then knows only what the
	// module exports.
	info     growInfo
	analysed bool
	// memoryExports name every memory, for reading their sizes.
	memoryExports []string
	imports       []engine.Import
	exports       []engine.Export
	minPages      uint32
	hasMemory     bool
	// image is what memory 0 of every instance starts as (memory.go).
	image *memImage
	// runs counts the runs in flight; the module is freed once it is
	// closed and idle (free).
	runs inflight.Gate
}

var _ engine.Module = (*module)(nil)

func (m *module) noteMemory(mt *wasmtime.MemoryType) {
	m.minPages, m.hasMemory = uint32(min(mt.Minimum(), 65536)), true
}

func (m *module) Imports() []engine.Import { return m.imports }
func (m *module) Exports() []engine.Export { return m.exports }
func (m *module) MinMemoryPages() (uint32, bool) {
	return m.minPages, m.hasMemory
}

// Close implements engine.Module.
func (m *module) Close(ctx context.Context) error {
	m.runs.Close()
	if err := m.runs.Wait(ctx); err != nil {
		return fmt.Errorf("wasmtime: close: %d runs in flight: %w", m.runs.InFlight(), err)
	}
	return nil
}

const (
	pageSize = 65536
	maxLimit = 65536 * pageSize
)

// run is the state of one Module.Run, kept in the store's data so that
// host functions and the WASI overrides find the run's context.
type run struct {
	ctx context.Context
	c   cRun
	// mem is the instance's exported memory, once instantiation returned
	// (hasMem).
	mem    cMemory
	hasMem bool
	// slept is set when a host function ended the run because the
	// context did.
	slept atomic.Bool
	// exited is set, and exitCode holds the status, when the guest called
	// WASI's proc_exit (procExit).
	exited   atomic.Bool
	exitCode uint32
	// hostTrap is the trap a host function ended the guest with.
	hostTrap *engine.Trap
	// view and stack are reused by every host call of the run, one at a
	// time (a store runs on one thread and host functions do not call
	// back into the guest), so that a call allocates neither.
	view  memory
	stack [8]uint64
}

// memoryOf returns the calling instance's exported memory, or nil.
func (r *run) memoryOf(c *wasmtime.Caller) *memory {
	if !r.hasMem {
		// A host call during instantiation (a start function).
		ex := c.GetExport(memoryExport)
		if ex == nil {
			return nil
		}
		mem := ex.Memory()
		if mem == nil {
			return nil
		}
		r.view.b = mem.UnsafeData(c)
		return &r.view
	}
	r.view.b = r.mem.data(c)
	return &r.view
}

const memoryExport = "memory"

// Run implements engine.Module.
func (m *module) Run(ctx context.Context, cfg engine.RunConfig) (res engine.RunResult, err error) {
	if !m.runs.Enter() {
		return res, engine.ErrClosed
	}
	// Last of all, after the store is retired: the module, and the engine,
	// may be freed as the run leaves.
	defer m.runs.Leave()
	limit := cfg.MemoryLimit
	if limit == 0 || limit > maxLimit {
		limit = maxLimit
	}
	if m.hasMemory && uint64(m.minPages)*pageSize > limit {
		res.MemoryLimitHit = true
		return res, nil
	}
	for _, mi := range m.info.memories {
		if mi.minBytes() > limit {
			res.MemoryLimitHit = true
			return res, nil
		}
	}
	if ctx.Err() != nil {
		return res, engine.ErrInterrupted
	}
	slot := false
	if m.e.slots != nil {
		select {
		case m.e.slots <- struct{}{}:
			slot = true
		case <-ctx.Done():
			return res, engine.ErrInterrupted
		}
	}
	// Descriptors, streams and directories are the wasip1 layer's.
	wasi := wasip1.New(cfg)
	defer wasi.Close()
	r := &run{ctx: wasip1.With(ctx, wasi), c: newCRun()}
	store := wasmtime.NewStoreWithData(m.e.eng, r)
	// The store is deleted as Run returns, here or by the engine's closer,
	// then the run state (the store's epoch callback points into it) and
	// the slot are freed (retire.go). end, deferred below, has run by then:
	// the run no longer counts as in flight.
	defer func() { m.e.retire(retired{store: store, c: r.c, slot: slot}, ctx.Err() != nil) }()
	setupStore(store, r.c)
	store.Limiter(int64(limit), -1, -1, -1, -1)

	if err := configureWASI(store, cfg); err != nil {
		return res, err
	}

	m.e.begin()
	defer m.e.end()
	// When the context ends, the run's flag is set for the epoch callback
	// and the epoch advanced so that the guest meets it at once. The run
	// state is freed only once that function is done with it.
	fired := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		defer close(fired)
		r.c.stop()
		m.e.interrupt()
	})
	defer func() {
		if !stop() {
			<-fired
		}
	}()
	var inst *wasmtime.Instance
	defer func() {
		res.PeakMemory, res.MemoryLimitHit = m.memoryUsage(store, inst, r, limit)
	}()

	inst, err = m.image.instantiate(m.e.linker, store, m.mod)
	if err != nil {
		return m.classify(r, res, err)
	}
	r.mem, r.hasMem = exportMemory(store, inst, memoryExport)
	for _, name := range cfg.Entry {
		fn := exportFunc(store, inst, name)
		if fn == nil {
			return res, fmt.Errorf("wasmtime: entry point %q is not exported", name)
		}
		out, err := fn.Call(store, m.entryParams(store, name, fn)...)
		if err != nil {
			return m.classify(r, res, err)
		}
		if r.slept.Load() {
			return m.classify(r, res, errSleepCut)
		}
		res.Results = results(out)
	}
	if cfg.Capture != nil {
		return res, cfg.Capture(instance{store, inst})
	}
	return res, nil
}

// configureWASI gives the store its WASI state: argv and environment.
// Standard streams and directories are served by package wasip1.
func configureWASI(store *wasmtime.Store, cfg engine.RunConfig) error {
	wasi := newWASIConfig()
	defer wasi.close()
	if err := wasi.argv(cfg.Args); err != nil {
		return err
	}
	names, values := make([]string, len(cfg.Env)), make([]string, len(cfg.Env))
	for i, kv := range cfg.Env {
		names[i], values[i], _ = strings.Cut(kv, "=")
	}
	if err := wasi.env(names, values); err != nil {
		return err
	}
	return wasi.apply(store)
}

// memoryUsage reads, after a run, the largest size a memory reached (its
// size now: memory never shrinks) and whether a memory.grow was refused
// for asking past limit. Without an instance (instantiation failed) it
// reports the initial sizes.
func (m *module) memoryUsage(store *wasmtime.Store, inst *wasmtime.Instance, r *run, limit uint64) (peak uint64, hit bool) {
	for _, mi := range m.info.memories {
		peak = max(peak, mi.minBytes())
	}
	if inst == nil {
		if !m.analysed && m.hasMemory {
			peak = uint64(m.minPages) * pageSize
		}
		return peak, false
	}
	names := m.memoryExports
	if !m.analysed {
		names = []string{memoryExport}
	}
	for _, name := range names {
		mem, ok := r.mem, r.hasMem // looked up once already, after instantiation
		if name != memoryExport {
			mem, ok = exportMemory(store, inst, name)
		}
		if ok {
			peak = max(peak, uint64(len(mem.data(store))))
		}
	}
	if m.info.hooked {
		if refused, ok := exportI64(store, inst, refusedExport); ok {
			hit = uint64(refused) > limit
		}
	}
	return peak, hit
}

// entryParams returns zeros for the parameters of the entry point name,
// whose function is fn. It reads the types from the module's exports,
// listed once at compile time, rather than from fn, which would make
// wasmtime-go allocate a function type and its parameter types (each with
// a finalizer) on every run.
func (m *module) entryParams(store *wasmtime.Store, name string, fn *wasmtime.Func) []any {
	var types []wasmtime.ValKind
	found := false
	for _, ex := range m.exports {
		if ex.Name == name && ex.Kind == engine.KindFunc {
			found = true
			for _, t := range ex.Signature.Params {
				types = append(types, valKind(t))
			}
			break
		}
	}
	if !found {
		for _, p := range fn.Type(store).Params() {
			types = append(types, p.Kind())
		}
	}
	if len(types) == 0 {
		return nil
	}
	params := make([]any, len(types))
	for i, k := range types {
		params[i] = zeroVal(k)
	}
	return params
}

// zeroVal is the zero of a parameter of kind k, for an entry that takes
// parameters.
func zeroVal(k wasmtime.ValKind) any {
	switch k {
	case wasmtime.KindI64:
		return int64(0)
	case wasmtime.KindF32:
		return float32(0)
	case wasmtime.KindF64:
		return float64(0)
	}
	return int32(0)
}

// results turns what Func.Call returned (nil, one value, or a list) into
// the engine contract's raw values.
func results(out any) []uint64 {
	var vals []wasmtime.Val
	switch v := out.(type) {
	case nil:
		return nil
	case []wasmtime.Val:
		vals = v
	case int32:
		return []uint64{uint64(uint32(v))}
	case int64:
		return []uint64{uint64(v)}
	case float32:
		return []uint64{uint64(math.Float32bits(v))}
	case float64:
		return []uint64{math.Float64bits(v)}
	default:
		return nil
	}
	raw := make([]uint64, len(vals))
	for i, v := range vals {
		switch v.Kind() {
		case wasmtime.KindI32:
			raw[i] = uint64(uint32(v.I32()))
		case wasmtime.KindI64:
			raw[i] = uint64(v.I64())
		case wasmtime.KindF32:
			raw[i] = uint64(math.Float32bits(v.F32()))
		case wasmtime.KindF64:
			raw[i] = math.Float64bits(v.F64())
		}
	}
	return raw
}

var errSleepCut = errors.New("wasmtime: a host function ended the run with its context")

// procExit is WASI's proc_exit(code). wasmtime's own refuses a status of
// 126 or more with an error that is not an exit, though preview1 lets a
// guest exit with any u32 (and wazero does): the engine records the status
// and ends the run with a trap that classify turns into the exit.
func procExit(c *wasmtime.Caller, args []wasmtime.Val) ([]wasmtime.Val, *wasmtime.Trap) {
	r, ok := c.Data().(*run)
	if !ok {
		return nil, wasmtime.NewTrap("blockhost: proc_exit called outside a run")
	}
	r.exitCode = uint32(args[0].I32())
	r.exited.Store(true)
	return nil, wasmtime.NewTrap("proc_exit")
}

// classify turns a wasmtime error into the engine contract's terms.
func (m *module) classify(r *run, res engine.RunResult, err error) (engine.RunResult, error) {
	if r.c.interrupted() || r.slept.Load() || r.ctx.Err() != nil {
		// The run was ended by its context (or ended while the context did:
		// the interruption is what counts).
		return res, engine.ErrInterrupted
	}
	if r.exited.Load() {
		res.Exited, res.ExitCode = true, r.exitCode
		return res, nil
	}
	if r.hostTrap != nil {
		return res, r.hostTrap
	}
	var werr *wasmtime.Error
	if errors.As(err, &werr) {
		if code, ok := werr.ExitStatus(); ok {
			res.Exited, res.ExitCode = true, uint32(code)
			return res, nil
		}
	}
	var trap *wasmtime.Trap
	if errors.As(err, &trap) {
		return res, trapOf(trap)
	}
	return res, err
}

// trapOf describes a trap in the words the wazero engine uses, so that a
// step's message does not depend on the engine.
func trapOf(t *wasmtime.Trap) *engine.Trap {
	if code := t.Code(); code != nil {
		switch *code {
		case wasmtime.StackOverflow:
			return &engine.Trap{Message: "stack overflow", StackOverflow: true}
		case wasmtime.MemoryOutOfBounds:
			return &engine.Trap{Message: "out of bounds memory access"}
		case wasmtime.HeapMisaligned:
			return &engine.Trap{Message: "unaligned atomic"}
		case wasmtime.TableOutOfBounds, wasmtime.IndirectCallToNull:
			return &engine.Trap{Message: "invalid table access"}
		case wasmtime.BadSignature:
			return &engine.Trap{Message: "indirect call type mismatch"}
		case wasmtime.IntegerOverflow:
			return &engine.Trap{Message: "integer overflow"}
		case wasmtime.IntegerDivisionByZero:
			return &engine.Trap{Message: "integer divide by zero"}
		case wasmtime.BadConversionToInteger:
			return &engine.Trap{Message: "invalid conversion to integer"}
		case wasmtime.UnreachableCodeReached:
			return &engine.Trap{Message: "unreachable"}
		}
	}
	msg := t.Message()
	msg, _, _ = strings.Cut(msg, "\n")
	msg = strings.TrimPrefix(msg, "wasm trap: ")
	return &engine.Trap{Message: msg}
}

// memory is a guest's linear memory as host functions see it, for the
// duration of one host call.
type memory struct{ b []byte }

var _ engine.Memory = (*memory)(nil)

func (m *memory) span(offset, n uint32) ([]byte, bool) {
	end := uint64(offset) + uint64(n)
	if end > uint64(len(m.b)) {
		return nil, false
	}
	return m.b[offset:end:end], true
}

func (m *memory) Read(offset, byteCount uint32) ([]byte, bool) { return m.span(offset, byteCount) }

func (m *memory) Write(offset uint32, v []byte) bool {
	if uint64(len(v)) > uint64(^uint32(0)) {
		return false
	}
	b, ok := m.span(offset, uint32(len(v)))
	if ok {
		copy(b, v)
	}
	return ok
}

func (m *memory) WriteUint32Le(offset, v uint32) bool {
	b, ok := m.span(offset, 4)
	if ok {
		binary.LittleEndian.PutUint32(b, v)
	}
	return ok
}

func (m *memory) WriteUint64Le(offset uint32, v uint64) bool {
	b, ok := m.span(offset, 8)
	if ok {
		binary.LittleEndian.PutUint64(b, v)
	}
	return ok
}
