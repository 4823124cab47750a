package host

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/blockhost/blockhost/abi"
	"github.com/blockhost/blockhost/host/engine"
	"github.com/blockhost/blockhost/host/engine/snapshot"
)

// Snapshots after initialisation (docs/abi.md §2.1, docs/engines.md
// "Snapshots"). A reactor that exports the snapshot marker — every Go
// block built with the SDK as a reactor does — has its _initialize run
// once per compiled module and name instead of once per step: the host
// runs it in an instance of a copy of the module that exports its globals,
// captures linear memory and the mutable globals, and rewrites the
// module so that it starts in that state (snapshot.Plan.Rewrite). That
// module is compiled as any other, so each engine's own instantiation
// applies, and every step still gets a fresh instance of its own.
//
// The image holds what initialisation saw of its environment: argv (the
// block's name), an empty environment and no preopened directories. A
// step with arguments, environment variables or directories would have
// initialised differently, so it runs the module as it was, _initialize
// included; so does a step whose memory limit is below the image's size.
//
// Initialisation that calls a blockhost host function, writes to standard
// output or error, exits, traps, runs out of memory or time, or a module
// the rewrite does not support, leaves the block without a snapshot: one
// warning says why, and every step runs _initialize as before.

// snapEntry is the rewritten module of one compiled module and name,
// shared by every Load of them.
type snapEntry struct {
	// mu is held while the snapshot is taken; done is set once it was
	// taken or refused for good: not when the Load that tried was
	// cancelled, so that the next Load tries again.
	mu   sync.Mutex
	done bool
	mod  engine.Module // nil when there is no snapshot
	// memory is the size of the image's memory, which a step's memory
	// limit must allow.
	memory uint64
}

type snapKey struct {
	digest string
	name   string
}

// snapshotKey marks the context of an initialisation being captured; its
// value is the *captureState.
type snapshotKey struct{}

// captureState records what the guest did during initialisation that
// rules a snapshot out.
type captureState struct {
	hostCalls int
	wrote     bool
}

// refuseDuringCapture is called by every blockhost host function entered
// without a step: during a capture it ends initialisation, which rules the
// snapshot out, since the call's effect would be captured once instead of
// happening in every step.
func refuseDuringCapture(ctx context.Context) {
	if cs, ok := ctx.Value(snapshotKey{}).(*captureState); ok {
		cs.hostCalls++
		panic(&engine.Trap{Message: "blockhost host function called during initialisation"})
	}
}

// captureWriter is a standard stream during a capture: any write rules the
// snapshot out.
type captureWriter struct{ cs *captureState }

func (w captureWriter) Write(p []byte) (int, error) {
	if len(p) > 0 {
		w.cs.wrote = true
	}
	return len(p), nil
}

// captureTimeout bounds one initialisation, within the runtime's step
// timeout.
const captureTimeout = 10 * time.Second

// snapshotFor returns the block's snapshot, taking it (or loading it from
// the disk cache) on first use for this module and name.
//
// pre, when not nil, is the snapshot's module compiled from the disk cache
// while the block's own module compiled (prefetchSnapshot); snapshotFor
// uses it or closes it.
func (r *Runtime) snapshotFor(ctx context.Context, b *Block, sum [sha256.Size]byte, wasm []byte, pre *snapPrefetch) *snapEntry {
	defer pre.discard(ctx)
	if !r.snapshots || b.kind != kindABI || !slices.Equal(b.entry, []string{abi.ExportInitialize, abi.ExportRun}) {
		return nil
	}
	if !slices.ContainsFunc(b.mod.Exports(), func(ex engine.Export) bool {
		return ex.Name == abi.ExportSnapshot && ex.Kind == engine.KindFunc
	}) {
		return nil
	}
	k := snapKey{digest: b.digest, name: b.name}
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil
	}
	e, ok := r.snaps[k]
	if !ok {
		e = &snapEntry{}
		r.snaps[k] = e
	}
	r.mu.Unlock()
	e.mu.Lock()
	defer e.mu.Unlock()
	if !e.done {
		mod, mem, err := r.takeSnapshot(ctx, b, sum, wasm, pre)
		switch {
		case err == nil:
			e.mod, e.memory, e.done = mod, mem, true
		case ctx.Err() != nil:
			// The Load was cancelled: this block goes without, the next
			// Load tries again.
		default:
			e.done = true
			r.logger.Warn("no snapshot after initialisation: every step of this block runs _initialize",
				"block", b.name, "module", b.digest, "reason", err)
		}
	}
	if e.mod == nil {
		return nil
	}
	return e
}

// takeSnapshot returns the module rewritten to start after its
// initialisation, and the size of its memory.
func (r *Runtime) takeSnapshot(ctx context.Context, b *Block, sum [sha256.Size]byte, wasm []byte, pre *snapPrefetch) (engine.Module, uint64, error) {
	argv0 := b.name
	if mod, ok, err := pre.take(); ok {
		var mem uint64
		if err == nil {
			if mod, mem, err = r.checkSnapshot(ctx, b.name, mod); err == nil {
				return mod, mem, nil
			}
		} else {
			err = fmt.Errorf("compiling the rewritten module: %w", err)
		}
		r.snapCache.Reject(sum, argv0, err)
	} else if rewritten, ok := r.snapCache.Load(sum, argv0); ok {
		mod, mem, err := r.compileSnapshot(ctx, b.name, rewritten)
		if err == nil {
			return mod, mem, nil
		}
		r.snapCache.Reject(sum, argv0, err)
	}
	plan, err := snapshot.Prepare(wasm)
	if err != nil {
		return nil, 0, err
	}
	capMod, err := r.eng.Compile(ctx, plan.CaptureModule())
	if err != nil {
		return nil, 0, fmt.Errorf("compiling the module to capture: %w", err)
	}
	defer capMod.Close(context.WithoutCancel(ctx))

	cs := &captureState{}
	cctx, cancel := context.WithTimeout(context.WithValue(ctx, snapshotKey{}, cs), min(captureTimeout, r.limits.Timeout))
	defer cancel()
	var img *snapshot.Image
	rr, err := capMod.Run(cctx, engine.RunConfig{
		Entry:       []string{abi.ExportInitialize},
		Args:        []string{argv0},
		MemoryLimit: r.limits.Memory,
		Stdout:      captureWriter{cs},
		Stderr:      captureWriter{cs},
		Capture: func(inst engine.Instance) (err error) {
			img, err = plan.Take(inst)
			return err
		},
	})
	// In the order of a step's statuses (docs/abi.md §6): a guest out of
	// memory usually traps next.
	switch {
	case cs.hostCalls > 0:
		return nil, 0, errors.New("initialisation called a blockhost host function")
	case errors.Is(err, engine.ErrInterrupted):
		return nil, 0, fmt.Errorf("initialisation did not finish within %s", min(captureTimeout, r.limits.Timeout))
	case rr.MemoryLimitHit:
		return nil, 0, fmt.Errorf("initialisation needed more than the memory limit of %s", sizeString(r.limits.Memory))
	case err != nil:
		return nil, 0, fmt.Errorf("initialisation failed: %w", err)
	case rr.Exited:
		return nil, 0, fmt.Errorf("initialisation exited with code %d", rr.ExitCode)
	case cs.wrote:
		return nil, 0, errors.New("initialisation wrote to standard output or error")
	case img == nil:
		return nil, 0, errors.New("the engine captured nothing")
	}
	rewritten, err := plan.Rewrite(img)
	if err != nil {
		return nil, 0, err
	}
	mod, mem, err := r.compileSnapshot(ctx, b.name, rewritten)
	if err != nil {
		return nil, 0, err
	}
	r.snapCache.Store(sum, argv0, rewritten)
	return mod, mem, nil
}

// compileSnapshot compiles a rewritten module and checks that it is the
// reactor it must be: an ABI block whose only entry is blockhost_run.
func (r *Runtime) compileSnapshot(ctx context.Context, name string, rewritten []byte) (engine.Module, uint64, error) {
	mod, err := r.eng.Compile(ctx, rewritten)
	if err != nil {
		return nil, 0, fmt.Errorf("compiling the rewritten module: %w", err)
	}
	return r.checkSnapshot(ctx, name, mod)
}

// checkSnapshot checks that mod, a compiled rewritten module, is the
// reactor it must be, and closes it when it is not.
func (r *Runtime) checkSnapshot(ctx context.Context, name string, mod engine.Module) (engine.Module, uint64, error) {
	kind, entry, err := inspect(name, mod)
	pages, ok := mod.MinMemoryPages()
	if err == nil && (kind != kindABI || !slices.Equal(entry, []string{abi.ExportRun}) || !ok) {
		err = errors.New("the rewritten module is not a reactor without _initialize")
	}
	if err != nil {
		mod.Close(context.WithoutCancel(ctx))
		return nil, 0, err
	}
	return mod, uint64(pages) * 65536, nil
}

// stepModule returns the module and entry points a step runs: the
// snapshot's when the step starts as the snapshot's initialisation did and
// its memory limit holds the image.
func (b *Block) stepModule(step *Step, cfg *engine.RunConfig) engine.Module {
	s := b.snap
	if s == nil || len(step.Args) > 0 || len(cfg.Env) > 0 || len(cfg.Dirs) > 0 || s.memory > cfg.MemoryLimit {
		return b.mod
	}
	cfg.Entry = snapEntryPoints
	return s.mod
}

var snapEntryPoints = []string{abi.ExportRun}

// UsesSnapshot reports whether steps of the block that have no arguments,
// environment or directories start from a snapshot taken after
// initialisation.
func (b *Block) UsesSnapshot() bool { return b.snap != nil }

// snapPrefetch is the snapshot's module of a block being loaded, compiled
// from the disk cache on a goroutine of its own while the block's module
// compiles: on a machine with a core to spare, a block that has a cached
// snapshot starts in the longer of the two compilations instead of their
// sum (a batch or a worker pays it before its first step). The goroutine
// is Load's: snapshotFor waits for it, and closes what it compiled unless
// the block uses it.
type snapPrefetch struct {
	done  chan struct{}
	found bool // whether the disk cache had the snapshot
	mod   engine.Module
	err   error
	taken bool
}

// prefetchSnapshot starts compiling the snapshot of the module wasm (whose
// SHA-256 is sum and digest "sha256:HEX") loaded as name, when snapshots are on, the module exports
// the SDK's snapshot marker (so the disk cache may hold one; other modules
// never touch the snapshot cache), and this runtime has not taken or
// refused it already (then it has nothing to do). It returns nil when it
// started nothing.
func (r *Runtime) prefetchSnapshot(ctx context.Context, name, digest string, sum [sha256.Size]byte, wasm []byte) *snapPrefetch {
	if !r.snapshots || r.snapCache == nil || !snapshot.Marked(wasm, abi.ExportSnapshot) {
		return nil
	}
	r.mu.Lock()
	_, known := r.snaps[snapKey{digest: digest, name: name}]
	r.mu.Unlock()
	if known {
		return nil
	}
	p := &snapPrefetch{done: make(chan struct{})}
	go func() {
		defer close(p.done)
		var rewritten []byte
		var ok bool
		if _, borrows := r.eng.(engine.Borrower); borrows {
			// The engine keeps nothing of the module: it is read into
			// memory of its own, freed once compiled.
			var release func()
			if rewritten, release, ok = r.snapCache.LoadBorrowed(sum, name); ok {
				snapPrefetchesBorrowed.Add(1)
				defer release()
			}
		} else {
			rewritten, ok = r.snapCache.Load(sum, name)
		}
		if !ok {
			return
		}
		p.found = true
		snapPrefetchesCompiled.Add(1)
		p.mod, p.err = r.eng.Compile(ctx, rewritten)
	}()
	return p
}

// take waits for the prefetch and returns what it compiled; ok is false
// when there was nothing to compile. The module is the caller's.
func (p *snapPrefetch) take() (mod engine.Module, ok bool, err error) {
	if p == nil {
		return nil, false, nil
	}
	<-p.done
	if !p.found || p.taken {
		return nil, false, nil
	}
	p.taken = true
	snapPrefetchesTaken.Add(1)
	return p.mod, true, p.err
}

// snapPrefetchesCompiled and snapPrefetchesTaken count snapshot modules
// prefetched and those handed to a block, and snapPrefetchesBorrowed those
// read into memory freed once compiled, for this package's tests.
var snapPrefetchesCompiled, snapPrefetchesTaken, snapPrefetchesBorrowed atomic.Int64

// discard waits for the prefetch and closes its module unless take
// handed it on.
func (p *snapPrefetch) discard(ctx context.Context) {
	if p == nil {
		return
	}
	<-p.done
	if !p.taken && p.mod != nil {
		p.mod.Close(context.WithoutCancel(ctx))
	}
	p.taken = true
}

// deferCompile returns the block's own module as a lazyModule when its
// snapshot's module came from the disk cache (pre), so that loading the
// block compiles one module instead of two, or when an earlier Load of
// the module made one; nil when the module must be compiled now: no
// snapshot in the cache, this runtime compiled the module already, or the
// module does not match its snapshot (snapshot.Original).
func (r *Runtime) deferCompile(name string, key [sha256.Size]byte, wasm []byte, pre *snapPrefetch) engine.Module {
	r.mu.Lock()
	lm := r.lazy[key]
	r.mu.Unlock()
	if lm != nil {
		return lm
	}
	if pre == nil {
		return nil
	}
	<-pre.done
	if !pre.found || pre.err != nil || pre.mod == nil {
		return nil
	}
	imports, exports, pages, err := snapshot.Original(wasm, pre.mod)
	if err != nil {
		return nil
	}
	lm = &lazyModule{r: r, name: name, key: key, wasm: wasm, imports: imports, exports: exports, minPages: pages}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, compiled := r.modules[key]; compiled || r.closed {
		return nil
	}
	if prev := r.lazy[key]; prev != nil {
		return prev
	}
	r.lazy[key] = lm
	return lm
}

// lazyModule is a block's own module, compiled on its first run: the steps
// that cannot start from the block's snapshot (stepModule) are the only
// ones that run it, and most blocks have none. Its imports and exports are
// the original module's (snapshot.Original). A compilation that fails is
// the run's host-side error, and the next run tries again; one that
// succeeds is kept, as Load's are, in the runtime's modules.
type lazyModule struct {
	r        *Runtime
	name     string
	key      [sha256.Size]byte
	wasm     []byte
	imports  []engine.Import
	exports  []engine.Export
	minPages uint32
	mod      atomic.Pointer[engine.Module]
}

func (l *lazyModule) Imports() []engine.Import { return l.imports }

func (l *lazyModule) Exports() []engine.Export { return l.exports }

func (l *lazyModule) MinMemoryPages() (uint32, bool) { return l.minPages, true }

func (l *lazyModule) Run(ctx context.Context, cfg engine.RunConfig) (engine.RunResult, error) {
	mod := l.mod.Load()
	if mod == nil {
		m, err := l.r.compile(ctx, l.name, l.key, l.wasm)
		if err != nil {
			return engine.RunResult{}, err
		}
		mod = &m
		l.mod.Store(mod)
		lazyCompiles.Add(1)
	}
	return (*mod).Run(ctx, cfg)
}

// Close does nothing: the module compiled is the runtime's, closed with its
// engine, as Load's are.
func (l *lazyModule) Close(context.Context) error { return nil }

// lazyCompiles counts lazy modules compiled, for this package's tests.
var lazyCompiles atomic.Int64
