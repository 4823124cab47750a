package capability_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/blockhost/blockhost/abi"
	"github.com/blockhost/blockhost/host/capability"
	"github.com/blockhost/blockhost/host/capability/capabilitytest"
	"github.com/blockhost/blockhost/host/engine"
	_ "github.com/blockhost/blockhost/host/httpcap" // registers "http"
)

type state struct{ last capability.LastError }

func (*state) Close() {}

type fake struct {
	name string
	fns  []capability.Func
}

func (f fake) Name() string                 { return f.name }
func (f fake) Functions() []capability.Func { return f.fns }
func (f fake) Open(context.Context, capability.Step, any) (capability.State, error) {
	return &state{}, nil
}

func nop(*state, context.Context, engine.Memory, []uint64) abi.Result { return abi.ResultOK }

func mustPanic(t *testing.T, what, want string, f func()) {
	t.Helper()
	defer func() {
		p := recover()
		if p == nil {
			t.Fatalf("%s: no panic", what)
		}
		if s, _ := p.(string); !strings.Contains(s, want) {
			t.Fatalf("%s: panic %v, want one naming %q", what, p, want)
		}
	}()
	f()
}

// TestRegister_refuses: a capability must be named, unique, and declare
// only ABI functions of its own name, each once.
func TestRegister_refuses(t *testing.T) {
	mustPanic(t, "no name", "no name", func() { capability.Register(fake{}) })
	mustPanic(t, "taken name", "twice", func() { capability.Register(fake{name: abi.CapabilityHTTP}) })
	mustPanic(t, "another capability's function", abi.FuncFSRead, func() {
		capability.Register(fake{name: "other", fns: []capability.Func{capability.Fn(abi.FuncFSRead, nop)}})
	})
	mustPanic(t, "a core function", abi.FuncLog, func() {
		capability.Register(fake{name: "other", fns: []capability.Func{capability.Fn(abi.FuncLog, nop)}})
	})
	mustPanic(t, "not in the ABI", "kv_get", func() {
		capability.Register(fake{name: "kv", fns: []capability.Func{capability.Fn("kv_get", nop)}})
	})
	if _, ok := capability.Lookup("other"); ok {
		t.Fatal("a refused capability was registered")
	}
	if _, ok := capability.Lookup(abi.CapabilityHTTP); !ok {
		t.Fatal("http is not registered")
	}
}

// TestLastErrorFunc: not_found with no failure whatever the buffer;
// otherwise the detail as CopyOut writes it, never replaced by fetching.
func TestLastErrorFunc(t *testing.T) {
	f := capability.LastErrorFunc(abi.FuncHTTPLastError, func(s *state) *capability.LastError { return &s.last })
	s := &state{}
	mem := make(capabilitytest.Memory, 1024)
	call := func(args ...uint64) abi.Result { return f.Call(context.Background(), s, mem, args) }
	for _, args := range [][]uint64{{0, 100, 200}, {2000, 100, 200}, {0, 100, 5000}, {0, 0, 0}} {
		if r := call(args...); r != abi.ResultNotFound {
			t.Fatalf("no failure, buffer %v: %s, want not_found", args, r)
		}
	}
	if r := f.Call(context.Background(), s, nil, []uint64{0, 100, 200}); r != abi.ResultNotFound {
		t.Fatalf("no failure, no memory: %s, want not_found", r)
	}
	s.last.Invalid("the path is out of bounds")
	if r := call(0, 100, 5000); r != abi.ResultInvalid {
		t.Fatalf("n_ptr out of bounds: %s", r)
	}
	if r := call(0, 4, 200); r != abi.ResultLimit {
		t.Fatalf("buffer too small: %s", r)
	}
	if r := call(2000, 512, 200); r != abi.ResultInvalid {
		t.Fatalf("buffer out of bounds: %s", r)
	}
	if r := call(0, 512, 600); r != abi.ResultOK {
		t.Fatalf("good buffer: %s", r)
	}
	var e abi.Error
	n := uint32(mem[600]) | uint32(mem[601])<<8
	if err := json.Unmarshal(mem[:n], &e); err != nil || e.Code != abi.CodeInvalidInput || e.Message != "the path is out of bounds" {
		t.Fatalf("detail %+v, %v", e, err)
	}
}
