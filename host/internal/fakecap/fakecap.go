// Package fakecap is a capability for the host's tests: added to a host
// by importing it, as any new capability is, it records what the host
// hands it. It has no host functions (the ABI has none for it); it has a
// manifest section, capabilities { fake { tag = "…" } }, and a flag,
// --allow-fake TAG, which appends "+TAG" to the manifest's tag.
package fakecap

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/hashicorp/hcl/v2"

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

// DecodeSection reads fake { tag = "…" }.
func (Capability) DecodeSection(body hcl.Body, _ string) (any, hcl.Diagnostics) {
	var g struct {
		Tag string `hcl:"tag"`
	}
	attrs, diags := body.JustAttributes()
	if diags.HasErrors() {
		return nil, diags
	}
	a, ok := attrs["tag"]
	if !ok {
		return nil, hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "Missing tag", Subject: body.MissingItemRange().Ptr()}}
	}
	v, diags := a.Expr.Value(nil)
	if diags.HasErrors() {
		return nil, diags
	}
	g.Tag = v.AsString()
	return Grant{Tag: g.Tag}, nil
}

// Flag is --allow-fake.
func (Capability) Flag() (string, string) { return "allow-fake", "a test capability's `TAG`" }

// ParseFlags appends "+TAG" to base's tag for each value; "bad" is refused.
func (Capability) ParseFlags(values []string, base any) (any, error) {
	var g Grant
	if b, ok := base.(Grant); ok {
		g = b
	}
	for _, v := range values {
		if v == "bad" {
			return nil, fmt.Errorf("tag %q is refused", v)
		}
		g.Tag += "+" + v
	}
	return g, nil
}
