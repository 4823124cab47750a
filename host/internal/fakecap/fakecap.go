// Package fakecap is a capability for the host's tests: added to a host
// by importing it, as any new capability is, it records what the host
// hands it. It has no host functions (the ABI has none for it).
package fakecap

import (
	"context"
	"errors"
	"sync"

	"github.com/blockhost/blockhost/host/capability"
)

// Name is the capability's name; its grants go in host.Grants.Caps[Name].
const Name = "fake"

// Grant is the capability's grant. Fail makes Open fail with that error.
type Grant struct {
	Tag  string
	Fail error
}

func init() { capability.Register(Capability{}) }

// Capability is the fake capability.
type Capability struct{}

func (Capability) Name() string                 { return Name }
func (Capability) Functions() []capability.Func { return nil }

// Open records the grant it got and the step, and fails as the grant says.
func (Capability) Open(_ context.Context, step capability.Step, grant any) (capability.State, error) {
	var g *Grant
	switch v := grant.(type) {
	case nil:
	case Grant:
		g = &v
	default:
		return nil, capability.ErrNoGrant
	}
	mu.Lock()
	defer mu.Unlock()
	s := &State{Step: step.ID(), Grant: g}
	opened[step.ID()] = append(opened[step.ID()], s)
	if g != nil && g.Fail != nil {
		return nil, g.Fail
	}
	return s, nil
}

// State is one step's state; Closed counts its Close calls.
type State struct {
	Step   string
	Grant  *Grant
	Closed int
}

// Close counts.
func (s *State) Close() {
	mu.Lock()
	defer mu.Unlock()
	s.Closed++
}

var (
	mu     sync.Mutex
	opened = map[string][]*State{}
)

// Opened returns the states opened for the step id.
func Opened(id string) []*State {
	mu.Lock()
	defer mu.Unlock()
	return opened[id]
}

// ErrOpen is an error a grant can ask Open to fail with.
var ErrOpen = errors.New("fakecap: cannot open")
