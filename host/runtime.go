package host

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/blockhost/blockhost/abi"
	"github.com/blockhost/blockhost/host/auditlog"
	"github.com/blockhost/blockhost/host/engine"
	"github.com/blockhost/blockhost/host/engine/snapshot"
	"github.com/blockhost/blockhost/host/extism"
	// The default engine is always available.
	_ "github.com/blockhost/blockhost/host/engine/wazero"
)

// DefaultEngine is the engine a runtime uses unless configured otherwise.
const DefaultEngine = "wazero"

// Limits bound one step. A zero field means "use the default".
type Limits struct {
	// Timeout bounds the step's wall time. Default 30s.
	Timeout time.Duration
	// Memory caps linear memory in bytes. Default 64 MiB.
	Memory uint64
	// Output caps the bytes a step may write as output. Default 1 MiB.
	Output uint64
	// Log caps the bytes of log messages and values per step. Default 64 KiB.
	Log uint64
}

// DefaultLimits are the limits of docs/abi.md §7.
var DefaultLimits = Limits{
	Timeout: 30 * time.Second,
	Memory:  64 << 20,
	Output:  1 << 20,
	Log:     64 << 10,
}

// Or returns l with each zero field taken from d.
func (l Limits) Or(d Limits) Limits {
	if l.Timeout == 0 {
		l.Timeout = d.Timeout
	}
	if l.Memory == 0 {
		l.Memory = d.Memory
	}
	if l.Output == 0 {
		l.Output = d.Output
	}
	if l.Log == 0 {
		l.Log = d.Log
	}
	return l
}

// RuntimeConfig configures a Runtime. It is immutable: each With method
// returns a modified copy.
type RuntimeConfig struct {
	engine   string
	cacheDir string
	logger   hclog.Logger
	limits   Limits
	audit    *auditlog.Log
	// noSnapshots turns snapshots after initialisation off (snapshot.go).
	noSnapshots bool
}

// NewRuntimeConfig returns the default configuration: the wazero engine,
// no disk cache, a logger that discards, and DefaultLimits.
func NewRuntimeConfig() RuntimeConfig {
	return RuntimeConfig{engine: DefaultEngine, limits: DefaultLimits}
}

// WithEngine selects the engine by its registered name.
func (c RuntimeConfig) WithEngine(name string) RuntimeConfig { c.engine = name; return c }

// WithCacheDir keeps compiled code in dir, so that another process
// loading the same module skips compilation. Empty means no disk cache.
// An entry is used only if it was written for the same module bytes by the
// same engine, version and configuration, and is whole; any other entry is
// logged as a warning, compiled afresh and replaced. A directory that
// cannot be used is logged once and the runtime runs without a disk cache:
// the cache never fails a Load (docs/engines.md, "Compiled code on disk").
func (c RuntimeConfig) WithCacheDir(dir string) RuntimeConfig { c.cacheDir = dir; return c }

// WithLogger sets the logger that receives the runtime's and the blocks'
// records. Nil means discard.
func (c RuntimeConfig) WithLogger(l hclog.Logger) RuntimeConfig { c.logger = l; return c }

// WithAuditLog makes every step record its start, every use and refusal
// of a capability, and its end in l (host/auditlog), apart from the
// general log. Nil, the default, keeps no audit log.
func (c RuntimeConfig) WithAuditLog(l *auditlog.Log) RuntimeConfig { c.audit = l; return c }

// WithSnapshots turns on or off starting steps from a snapshot taken after
// a reactor's initialisation (docs/engines.md, "Snapshots"). On by
// default; a runtime that runs one step per module gains nothing from
// it, since taking the snapshot costs an initialisation and a second
// compilation.
func (c RuntimeConfig) WithSnapshots(on bool) RuntimeConfig { c.noSnapshots = !on; return c }

// WithLimits sets the default limits of every step; zero fields keep
// DefaultLimits.
func (c RuntimeConfig) WithLimits(l Limits) RuntimeConfig { c.limits = l.Or(DefaultLimits); return c }

// Runtime loads and runs blocks on one engine. It is safe for concurrent
// use.
type Runtime struct {
	eng    engine.Engine
	logger hclog.Logger
	limits Limits
	audit  *auditlog.Log

	mu      sync.Mutex
	modules map[[sha256.Size]byte]*compileEntry
	// lazy holds the modules whose compilation waits for a step that
	// needs it (snapshot.go, deferCompile), so that every Load of the
	// module shares one.
	lazy   map[[sha256.Size]byte]*lazyModule
	closed bool

	// snapshots is on unless configured off; snaps holds each module and
	// name's snapshot, snapCache keeps them on disk (snapshot.go).
	snapshots bool
	snaps     map[snapKey]*snapEntry
	snapCache *snapshot.Cache
}

type compileEntry struct {
	done chan struct{}
	mod  engine.Module
	err  error
}

// NewRuntime creates a runtime with the given configuration.
func NewRuntime(ctx context.Context, cfg RuntimeConfig) (*Runtime, error) {
	factory, ok := engine.Lookup(cfg.engine)
	if !ok {
		return nil, fmt.Errorf("%w %q (available: %v)", ErrUnknownEngine, cfg.engine, engine.Names())
	}
	logger := cfg.logger
	if logger == nil {
		logger = hclog.NewNullLogger()
	}
	r := &Runtime{
		logger:  logger,
		limits:  cfg.limits.Or(DefaultLimits),
		audit:   cfg.audit,
		modules: map[[sha256.Size]byte]*compileEntry{},
		lazy:    map[[sha256.Size]byte]*lazyModule{},
		snaps:   map[snapKey]*snapEntry{},
		// A runtime without a cache directory keeps snapshots in memory only.
		snapshots: !cfg.noSnapshots,
	}
	eng, err := factory(ctx, engine.Config{
		HostModules: []engine.HostModule{hostModule(), extism.HostModule()},
		CacheDir:    cfg.cacheDir,
		Logger:      logger,
	})
	if err != nil {
		return nil, fmt.Errorf("host: engine %s: %w", cfg.engine, err)
	}
	r.eng = eng
	if cfg.cacheDir != "" && r.snapshots {
		r.snapCache = snapshot.OpenCache(logger, cfg.cacheDir, eng.Name(), eng.Version())
	}
	return r, nil
}

// Engine returns the name of the runtime's engine.
func (r *Runtime) Engine() string { return r.eng.Name() }

// Load compiles wasm, or reuses an earlier compilation of the same bytes,
// and validates it against the ABI. name identifies the block in results
// and logs, and module errors.
func (r *Runtime) Load(ctx context.Context, name string, wasm []byte) (*Block, error) {
	key := sha256.Sum256(wasm)
	digest := "sha256:" + hex.EncodeToString(key[:])
	pre := r.prefetchSnapshot(ctx, name, digest, key, wasm)
	var mod engine.Module = r.deferCompile(name, key, wasm, pre)
	if mod == nil {
		var err error
		if mod, err = r.compile(ctx, name, key, wasm); err != nil {
			pre.discard(ctx)
			return nil, err
		}
	}
	b, err := newBlock(r, name, mod)
	if err != nil {
		pre.discard(ctx)
		return nil, err
	}
	b.digest = digest
	b.snap = r.snapshotFor(ctx, b, key, wasm, pre)
	return b, nil
}

func (r *Runtime) compile(ctx context.Context, name string, key [sha256.Size]byte, wasm []byte) (engine.Module, error) {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil, ErrClosed
	}
	e, ok := r.modules[key]
	if !ok {
		e = &compileEntry{done: make(chan struct{})}
		r.modules[key] = e
	}
	r.mu.Unlock()
	if ok {
		select {
		case <-e.done:
		case <-ctx.Done():
			return nil, context.Cause(ctx)
		}
	} else {
		e.mod, e.err = r.eng.Compile(ctx, wasm)
		if e.err != nil {
			// Failed compilations are not kept: the next Load tries again,
			// which matters when the failure was a cancelled context.
			r.mu.Lock()
			delete(r.modules, key)
			r.mu.Unlock()
		}
		close(e.done)
	}
	if e.err != nil {
		var fe *engine.FormatError
		if errors.As(e.err, &fe) {
			// The reason says all there is to say: no engine saw the bytes.
			return nil, &ModuleError{Module: name, Kind: ErrInvalidModule, Detail: fe.Reason}
		}
		return nil, &ModuleError{Module: name, Kind: ErrInvalidModule, Detail: "not a valid WebAssembly module", Err: e.err}
	}
	return e.mod, nil
}

// Close releases the engine and everything compiled. It waits for the
// steps in flight to end, each by its own timeout or context (cancel them
// first for a prompt close), and frees nothing they use; if ctx ends
// first, Close returns its cause, and what they use is freed when the last
// of them ends. Load after Close returns ErrClosed, and a step run on a
// Block of a closed runtime ends as an error, resource_unavailable,
// without running.
func (r *Runtime) Close(ctx context.Context) error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil
	}
	r.closed = true
	r.modules = nil
	r.lazy = nil
	r.snaps = nil
	r.mu.Unlock()
	return r.eng.Close(ctx)
}

// hostVersion is the ABI version this host speaks.
const hostVersion = abi.Version
