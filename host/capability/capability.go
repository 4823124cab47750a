package capability

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/hcl/v2"

	"github.com/blockhost/blockhost/abi"
	"github.com/blockhost/blockhost/host/engine"
)

// Capability is one kind of access a step may be granted. Implementations
// are stateless values; everything of one step lives in the State that
// Open returns.
type Capability interface {
	// Name is the capability's name: the key of its grants in
	// host.Grants.Caps, its functions' abi.Function.Capability, and the
	// "capability" of its audit records ("http", "fs", "sql").
	Name() string
	// Functions are the capability's host functions in abi.ImportModule.
	Functions() []Func
	// Open prepares the capability for one step. grant is the step's grant
	// of this capability as the operator gave it, or nil when the step has
	// none: Open must then return a State whose calls are refused (denied),
	// not fail. An error fails the step before the guest starts; Open
	// returns an *abi.Error to choose the step error, anything else is
	// resource_unavailable. A State is returned even with ctx already done.
	Open(ctx context.Context, step Step, grant any) (State, error)
}

// State is one step's state of a capability. It is used only by the
// goroutine running the step's guest, so it needs no locking.
type State interface {
	// Close releases what the step opened; it is called once, when the
	// guest is done, before the step's result is made.
	Close()
}

// Step is what a capability sees of the step it serves. The host
// implements it; capabilitytest.NewStep is one for a capability's tests.
// Its methods may be called only from Open, the capability's host
// functions and Close, on the goroutine running the guest.
type Step interface {
	// ID is the step's identifier, Block the block's name and Digest the
	// module's ("sha256:HEX").
	ID() string
	Block() string
	Digest() string
	// Logger is the step's logger, carrying step_id and block. What a
	// capability writes here is the host's general log; what the audit
	// log must hold goes to Audit.
	Logger() hclog.Logger
	// Audit records one use or refusal of the capability in the audit
	// log, when the host keeps one; it is cheap when it does not. The host
	// adds the step's ids, block and digest.
	Audit(e Event)
	// Err is the step's error so far (error_set, or a capability's
	// SetErr), or nil.
	Err() *abi.Error
	// SetErr makes e the step's error, as error_set would: a quota the
	// capability enforces ends the step even if the guest carries on.
	SetErr(e *abi.Error)
	// Over reports whether the step has ended (ctx is the one the host
	// function got), and then the result the call must return: timeout or
	// cancelled by the cause. It records that the guest has seen the end.
	// Call it after anything that may have blocked.
	Over(ctx context.Context) (abi.Result, bool)
	// SawEnd records that a call of the capability found the step over,
	// so whatever the guest does next does not change the status.
	SawEnd()
	// AddDirs hands directories to the engine as the guest's WASI
	// preopened directories; only Open may call it.
	AddDirs(dirs ...engine.Dir)
}

// Event is one use or refusal of a capability, as the audit log records
// it. A capability fills in what applies; zero fields are left out.
type Event struct {
	// Capability is the capability's Name.
	Capability string
	// Op is what was done: "request" for HTTP, "read", "write", "list" …
	// for directories, "query", "exec" for SQL.
	Op string
	// Target is what it was done to: the URL, the guest path, the
	// database.
	Target string
	// Grant names the grant that allowed it, or that the target fell in.
	Grant string
	// Denied is set for a refusal; Reason then says why.
	Denied bool
	Reason string
	// Error is the failure of an allowed operation, or empty.
	Error string
	// Bytes is what was moved: response body read, file bytes read or
	// written, rows returned.
	Bytes int64
	// Duration is how long the operation took.
	Duration time.Duration
	// Fields are the capability's own details, such as "method" and
	// "status" for HTTP. Keys must not be the record's own fields.
	Fields map[string]any
}

// Func is one host function of a capability. Call gets the function's
// parameters in args (as the engine passed them), the step's State of the
// capability and the guest's memory (nil when the guest has none), and
// returns the function's result; the host has already counted the call and
// checked that the step is not over.
type Func struct {
	Name string
	Call func(ctx context.Context, s State, mem engine.Memory, args []uint64) abi.Result
}

// Fn makes a Func from a method of the capability's own State type S,
// given as a method expression such as (*stepState).request, so that the
// function needs no type assertion of its own.
func Fn[S State](name string, method func(s S, ctx context.Context, mem engine.Memory, args []uint64) abi.Result) Func {
	return Func{Name: name, Call: func(ctx context.Context, s State, mem engine.Memory, args []uint64) abi.Result {
		return method(s.(S), ctx, mem, args)
	}}
}

var (
	mu   sync.Mutex
	caps []Capability
)

// Register adds a capability. Call it from the capability package's init.
// It panics when the name is taken or empty, or when a function is not an
// ABI v1 function of the capability's name, is declared twice, or another
// capability declares it: these are programming errors.
func Register(c Capability) {
	mu.Lock()
	defer mu.Unlock()
	name := c.Name()
	if name == "" {
		panic("capability: Register of a capability with no name")
	}
	for _, o := range caps {
		if o.Name() == name {
			panic("capability: Register called twice for " + name)
		}
	}
	seen := map[string]bool{}
	for _, f := range c.Functions() {
		if f.Call == nil {
			panic(fmt.Sprintf("capability: %s: function %s has no Call", name, f.Name))
		}
		if seen[f.Name] {
			panic(fmt.Sprintf("capability: %s: function %s declared twice", name, f.Name))
		}
		seen[f.Name] = true
		if owner, ok := abiCapability(f.Name); !ok || owner != name {
			panic(fmt.Sprintf("capability: %s: function %s is not an ABI v1 function of capability %q", name, f.Name, name))
		}
	}
	caps = append(caps, c)
}

func abiCapability(fn string) (string, bool) {
	for _, f := range abi.Functions() {
		if f.Name == fn {
			return f.Capability, true
		}
	}
	return "", false
}

// All returns the registered capabilities, in the order they registered
// (the order of package initialisation, which Go fixes by import path).
// The host opens them in this order for every step.
func All() []Capability {
	mu.Lock()
	defer mu.Unlock()
	return slices.Clone(caps)
}

// Lookup returns the registered capability of that name.
func Lookup(name string) (Capability, bool) {
	mu.Lock()
	defer mu.Unlock()
	for _, c := range caps {
		if c.Name() == name {
			return c, true
		}
	}
	return nil, false
}

// ManifestSection is implemented by a capability whose grants a manifest
// can write, as a block of the capability's name inside capabilities { }:
// capabilities { sql { database "orders" { … } } }. host/manifest finds it
// by the section's name and keeps what it returns in Manifest.Caps.
type ManifestSection interface {
	// DecodeSection decodes the section's body into the grant Open takes.
	// dir is the manifest's directory, for relative paths. Every problem
	// is a diagnostic naming the file, line and column; a grant with
	// errors is not used.
	DecodeSection(body hcl.Body, dir string) (any, hcl.Diagnostics)
}

// FlagGrants is implemented by a capability that operators may grant on
// the command line with a repeatable flag, such as --allow-sql; the
// blockhost command offers the flag on run and batch (and its worker
// configuration) and adds what it grants after the manifest's.
type FlagGrants interface {
	// Flag returns the flag's name without dashes ("allow-sql") and its
	// usage line.
	Flag() (name, usage string)
	// ParseFlags turns the flag's values, in order, into the grant Open
	// takes, added to base (the manifest's grant, or nil). An error names
	// the value that was wrong.
	ParseFlags(values []string, base any) (any, error)
}
