// Package engine is the boundary between the blockhost runtime and a
// WebAssembly engine. The host talks to WebAssembly only through the
// interfaces here; each engine lives in its own sub-package and registers a
// Factory under its name, so nothing engine-specific leaks into the host.
//
// An engine guarantees, for every Module.Run:
//   - execution stops promptly once ctx is done, whatever the guest is doing:
//     a loop, recursion, the start function, or a WASI clock sleep;
//   - linear memory never grows past RunConfig.MemoryLimit, and the refusal
//     is reported in RunResult.MemoryLimitHit;
//   - a trap is returned as a *Trap and never crashes the process;
//   - host functions receive the ctx given to Run.
//
// Closing waits for what is in flight rather than interrupting it:
// Module.Close and Engine.Close stop new runs at once (Run then returns
// ErrClosed, and Compile too on a closed engine) and free nothing a run
// still uses. They wait, as long as their ctx allows, for the runs in
// flight to end by themselves, by their own contexts; should ctx end
// first, Close returns its cause and what the runs use is freed when the
// last of them returns. A caller that wants steps to end sooner cancels
// their contexts first.
package engine

import (
	"context"
	"io"
	"sort"
	"sync"

	"github.com/hashicorp/go-hclog"

	"github.com/blockhost/blockhost/abi"
)

// Memory is the guest's linear memory as host functions see it. Offsets
// are guest pointers; a false result means out of bounds. A slice Read
// returns is the guest's memory itself, valid only until the host function
// returns: an engine may unmap or reuse the memory once the run ends, so
// nothing may keep the slice, or hand it to work that outlives the call.
type Memory interface {
	Read(offset, byteCount uint32) ([]byte, bool)
	Write(offset uint32, v []byte) bool
	WriteUint32Le(offset, v uint32) bool
	WriteUint64Le(offset uint32, v uint64) bool
}

// HostFunction is a function the host exports to guests. Func reads its
// parameters from stack and writes its results over them, in order; mem is
// the calling instance's memory, or nil when the guest has none. Func ends
// the guest with a trap by panicking with a *Trap: Run then returns that
// *Trap (or ErrInterrupted when the run's context has ended).
type HostFunction struct {
	Name      string
	Signature abi.Signature
	Func      func(ctx context.Context, mem Memory, stack []uint64)
	// StopWhenDone asks the engine to end the run, as an interruption,
	// instead of calling Func once ctx is done, and instead of returning to
	// the guest when ctx ended during the call: the guest never runs again
	// after its step is over, however it loops around the function.
	StopWhenDone bool
}

// HostModule is a named set of host functions.
type HostModule struct {
	Name      string
	Functions []HostFunction
}

// Config configures an engine when it is created.
type Config struct {
	// HostModules are made available to every module the engine runs.
	// WASI preview1 is provided by the engine itself.
	HostModules []HostModule
	// CacheDir, when set, keeps compiled code on disk so that a later process
	// compiling the same bytes skips compilation. An entry is used only if it
	// was written for the same module bytes, engine, version and settings
	// and is whole; a directory that cannot be used turns the cache off.
	// Neither ever fails a compilation.
	CacheDir string
	// Logger receives the engine's warnings, such as a refused cache entry
	// or an unusable cache directory. Nil discards them.
	Logger hclog.Logger
}

// ExternKind is the kind of an import or export.
type ExternKind byte

// Extern kinds.
const (
	KindFunc ExternKind = iota
	KindMemory
	KindTable
	KindGlobal
)

func (k ExternKind) String() string {
	switch k {
	case KindFunc:
		return "func"
	case KindMemory:
		return "memory"
	case KindTable:
		return "table"
	case KindGlobal:
		return "global"
	}
	return "unknown"
}

// Import is one import of a compiled module. Signature is set for functions.
type Import struct {
	Module, Name string
	Kind         ExternKind
	Signature    abi.Signature
}

// Export is one export of a compiled module. Signature is set for
// functions.
type Export struct {
	Name      string
	Kind      ExternKind
	Signature abi.Signature
}

// Engine compiles and runs WebAssembly modules. It is safe for concurrent
// use.
type Engine interface {
	// Name is the name the engine registered under, such as "wazero".
	Name() string
	// Version identifies the engine's build, for cache keys.
	Version() string
	// Compile validates and compiles wasm. The returned Module can be run
	// many times, concurrently.
	Compile(ctx context.Context, wasm []byte) (Module, error)
	// Close releases the engine and every module it compiled, once the
	// runs in flight on them have returned (see the package comment). It
	// returns ctx's cause if ctx ends before then; closing again is
	// harmless.
	Close(ctx context.Context) error
}

// A Borrower is an Engine whose Compile keeps nothing of wasm once it
// returns: not the slice, nor any part of it. The caller may then read a
// module it drops after compiling (a snapshot's cache entry) into memory
// of its own and free it as soon as Compile returns. An engine that may
// keep a part of wasm (a data segment it serves its memories from) does
// not implement it.
type Borrower interface {
	Engine
	// BorrowsModules is a marker; it does nothing.
	BorrowsModules()
}

// Module is a compiled module.
type Module interface {
	Imports() []Import
	Exports() []Export
	// MinMemoryPages is the initial size, in 64 KiB pages, of the module's
	// memory, defined or imported; ok is false when it has none.
	MinMemoryPages() (pages uint32, ok bool)
	// Run instantiates the module afresh, calls cfg.Entry in order, and
	// closes the instance. A nil error means every entry returned or the
	// guest exited (see RunResult). The error is a *Trap when the guest
	// trapped, ErrInterrupted when ctx ended the run, and anything else is
	// a host-side failure. Once the module or its engine is closed, Run
	// returns ErrClosed without running anything.
	Run(ctx context.Context, cfg RunConfig) (RunResult, error)
	// Close releases the compiled code once the runs in flight on it have
	// returned (see the package comment). It returns ctx's cause if ctx
	// ends before then; closing again is harmless.
	Close(ctx context.Context) error
}

// RunConfig is one run of a module.
type RunConfig struct {
	// Entry names the exported functions to call, in order, after
	// instantiation. An entry that takes parameters is called with zeros.
	Entry []string
	// Args is the WASI argv, program name first.
	Args []string
	// Env is WASI environment variables as "KEY=value".
	Env []string
	// Stdin, Stdout and Stderr are WASI's standard streams; nil means empty
	// input and discarded output.
	Stdin          io.Reader
	Stdout, Stderr io.Writer
	// MemoryLimit caps linear memory in bytes; 0 means the engine's maximum.
	MemoryLimit uint64
	// Dirs are the guest's WASI preopened directories; none means no
	// file system at all.
	Dirs []Dir
	// Capture, when set, is called with the instance once every entry
	// returned, before it is closed; its error is Run's. The host takes
	// its snapshots after initialisation this way (host/snapshot.go).
	Capture func(Instance) error
}

// RunResult describes a run that ended without a host-side failure.
type RunResult struct {
	// Exited is true when the guest called WASI proc_exit; ExitCode is its
	// argument. A guest that returns from its entry exits with 0.
	Exited   bool
	ExitCode uint32
	// PeakMemory is the largest size, in bytes, linear memory reached.
	PeakMemory uint64
	// MemoryLimitHit is true when the guest asked for memory beyond
	// MemoryLimit and was refused.
	MemoryLimitHit bool
	// Results are what the last entry returned, when every entry returned.
	Results []uint64
}

var (
	registryMu sync.RWMutex
	registry   = map[string]Factory{}
)

// Factory creates an engine.
type Factory func(ctx context.Context, cfg Config) (Engine, error)

// Register makes an engine available by name. It panics if name is empty
// or already registered: two engines under one name is a programming error.
func Register(name string, f Factory) {
	registryMu.Lock()
	defer registryMu.Unlock()
	if name == "" || f == nil {
		panic("engine: Register with an empty name or nil factory")
	}
	if _, dup := registry[name]; dup {
		panic("engine: Register called twice for " + name)
	}
	registry[name] = f
}

// Lookup returns the factory registered under name.
func Lookup(name string) (Factory, bool) {
	registryMu.RLock()
	defer registryMu.RUnlock()
	f, ok := registry[name]
	return f, ok
}

// Names lists the registered engines, sorted.
func Names() []string {
	registryMu.RLock()
	defer registryMu.RUnlock()
	names := make([]string, 0, len(registry))
	for n := range registry {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}
