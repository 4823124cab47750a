package host

import (
	"context"
	"errors"

	"github.com/hashicorp/go-hclog"

	"github.com/blockhost/blockhost/abi"
	"github.com/blockhost/blockhost/host/capability"
	"github.com/blockhost/blockhost/host/engine"
	// The capabilities every host offers. Each registers itself with
	// host/capability from its init; adding a capability to the host is
	// one more import here (docs/capabilities.md, "Adding a capability").
	_ "github.com/blockhost/blockhost/host/fscap"
	_ "github.com/blockhost/blockhost/host/httpcap"
	_ "github.com/blockhost/blockhost/host/sqlcap"
)

// capabilities are the registered capabilities, in the order every step
// opens them; a step's stepState.caps holds their states in this order.
// Registration happens in the capability packages' init, which Go runs
// before this package's variables are initialised.
var capabilities = capability.All()

// capabilityIndex returns the position of the capability name in
// capabilities, or -1.
func capabilityIndex(name string) int {
	for i, c := range capabilities {
		if c.Name() == name {
			return i
		}
	}
	return -1
}

// open prepares every capability for the step from its grants, adding
// what the engine needs (WASI preopened directories) to cfg. The error is
// the step's result when a grant cannot be honoured; whatever was opened
// is then closed by close, as always.
func (st *stepState) open(ctx context.Context, g Grants, cfg *engine.RunConfig) *abi.Error {
	st.cfg = cfg
	defer func() { st.cfg = nil }()
	st.caps = st.capsBuf[:0]
	for _, c := range capabilities {
		s, err := c.Open(ctx, st, g.grant(c.Name()))
		if err != nil {
			var ae *abi.Error
			if errors.As(err, &ae) {
				return ae
			}
			return abi.NewError(abi.CodeResourceUnavailable, abi.ClassPermanent, c.Name()+": "+err.Error())
		}
		st.caps = append(st.caps, s)
	}
	return nil
}

// close closes what open opened, in reverse order, once the guest is done.
func (st *stepState) close() {
	for i := len(st.caps) - 1; i >= 0; i-- {
		st.caps[i].Close()
	}
	st.caps = nil
}

// capState returns the step's state of capabilities[i]. A step prepared
// without open (a test's) gets every capability opened with no grants.
func (st *stepState) capState(ctx context.Context, i int) capability.State {
	if st.caps == nil {
		st.open(ctx, Grants{}, &engine.RunConfig{})
	}
	return st.caps[i]
}

// capabilityFunc is a capability's host function as the engine calls it:
// enter first, as every blockhost function, then the capability's Call
// with the step's state of the capability.
func capabilityFunc(i int, f capability.Func) engine.HostFunction {
	call := f.Call
	return hostFunc(f.Name, func(ctx context.Context, st *stepState, mem engine.Memory, stack []uint64) abi.Result {
		return call(ctx, st.capState(ctx, i), mem, stack)
	})
}

// The step as its capabilities see it (capability.Step).
var _ capability.Step = (*stepState)(nil)

func (st *stepState) ID() string           { return st.id }
func (st *stepState) Block() string        { return st.block.name }
func (st *stepState) Digest() string       { return st.block.digest }
func (st *stepState) Logger() hclog.Logger { return st.log() }
func (st *stepState) Err() *abi.Error      { return st.guestErr }
func (st *stepState) SetErr(e *abi.Error)  { st.guestErr = e }
func (st *stepState) SawEnd()              { st.sawEnd = true }
func (st *stepState) Over(ctx context.Context) (abi.Result, bool) {
	if ctx.Err() == nil {
		return abi.ResultOK, false
	}
	st.sawEnd = true
	if isTimeout(ctx) {
		return abi.ResultTimeout, true
	}
	return abi.ResultCancelled, true
}

// AddDirs adds WASI preopened directories; only during open.
func (st *stepState) AddDirs(dirs ...engine.Dir) {
	if st.cfg == nil {
		panic("host: AddDirs outside a capability's Open")
	}
	st.cfg.Dirs = append(st.cfg.Dirs, dirs...)
}
