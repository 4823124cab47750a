// Package capabilitytest helps test a capability package without a host:
// a capability.Step that records what the capability does to it, and
// calls of its host functions on a memory backed by a slice.
package capabilitytest

import (
	"context"
	"encoding/binary"

	"github.com/hashicorp/go-hclog"

	"github.com/blockhost/blockhost/abi"
	"github.com/blockhost/blockhost/host/capability"
	"github.com/blockhost/blockhost/host/engine"
)

// Step is a capability.Step for tests. Its fields are what the capability
// did; set Log to see its records.
type Step struct {
	StepID, BlockName, ModuleDigest string
	Log                             hclog.Logger
	// Events are the capability's audit events, in order.
	Events []capability.Event
	// Error is the step's error (SetErr).
	Error *abi.Error
	// Ended is set when the capability recorded that the guest saw the end.
	Ended bool
	// Dirs are what the capability handed to the engine.
	Dirs []engine.Dir
}

var _ capability.Step = (*Step)(nil)

// NewStep returns a step "step-1" of block "test" that logs nowhere.
func NewStep() *Step {
	return &Step{StepID: "step-1", BlockName: "test", Log: hclog.NewNullLogger()}
}

func (s *Step) ID() string                 { return s.StepID }
func (s *Step) Block() string              { return s.BlockName }
func (s *Step) Digest() string             { return s.ModuleDigest }
func (s *Step) Logger() hclog.Logger       { return s.Log }
func (s *Step) Audit(e capability.Event)   { s.Events = append(s.Events, e) }
func (s *Step) Err() *abi.Error            { return s.Error }
func (s *Step) SetErr(e *abi.Error)        { s.Error = e }
func (s *Step) SawEnd()                    { s.Ended = true }
func (s *Step) AddDirs(dirs ...engine.Dir) { s.Dirs = append(s.Dirs, dirs...) }

// Over is the host's rule: once ctx is done, timeout or cancelled by its
// cause, and the guest has seen the end.
func (s *Step) Over(ctx context.Context) (abi.Result, bool) {
	if ctx.Err() == nil {
		return abi.ResultOK, false
	}
	s.Ended = true
	if context.Cause(ctx) == context.DeadlineExceeded {
		return abi.ResultTimeout, true
	}
	return abi.ResultCancelled, true
}

// Memory is linear memory backed by a slice, with the engines' bounds
// rule.
type Memory []byte

var _ engine.Memory = Memory(nil)

func (m Memory) inside(off uint32, n uint64) bool { return uint64(off)+n <= uint64(len(m)) }

func (m Memory) Read(off, n uint32) ([]byte, bool) {
	if !m.inside(off, uint64(n)) {
		return nil, false
	}
	return m[off : off+n : off+n], true
}

func (m Memory) Write(off uint32, v []byte) bool {
	if !m.inside(off, uint64(len(v))) {
		return false
	}
	copy(m[off:], v)
	return true
}

func (m Memory) WriteUint32Le(off, v uint32) bool {
	if !m.inside(off, 4) {
		return false
	}
	binary.LittleEndian.PutUint32(m[off:], v)
	return true
}

func (m Memory) WriteUint64Le(off uint32, v uint64) bool {
	if !m.inside(off, 8) {
		return false
	}
	binary.LittleEndian.PutUint64(m[off:], v)
	return true
}

// Call calls the capability's host function name with the step's state s,
// as the host would once the call has entered, and returns its result. It
// panics when c has no such function.
func Call(ctx context.Context, c capability.Capability, s capability.State, mem engine.Memory, name string, args ...uint64) abi.Result {
	for _, f := range c.Functions() {
		if f.Name == name {
			sig, _ := abi.LookupFunction(name)
			stack := make([]uint64, max(len(sig.Params), len(sig.Results)))
			copy(stack, args)
			return f.Call(ctx, s, mem, stack)
		}
	}
	panic("capabilitytest: " + c.Name() + " has no function " + name)
}
