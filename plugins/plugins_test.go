package plugins

import (
	"context"
	"testing"

	"github.com/blockhost/blockhost/host"
)

func TestRegister(t *testing.T) {
	fn := func(context.Context, *host.Call) ([]byte, error) { return nil, nil }
	Register(Plugin{Name: "test.noop", Run: fn})
	t.Cleanup(func() { mu.Lock(); delete(registry, "test.noop"); mu.Unlock() })
	if p, ok := Lookup("test.noop"); !ok || p.Name != "test.noop" {
		t.Fatalf("lookup: %v %v", p, ok)
	}
	if _, ok := Lookup("test.absent"); ok {
		t.Fatal("found an unregistered plugin")
	}
	found := false
	for _, p := range All() {
		found = found || p.Name == "test.noop"
	}
	if !found {
		t.Fatal("All does not list the plugin")
	}
	for name, p := range map[string]Plugin{
		"duplicate": {Name: "test.noop", Run: fn},
		"emptyName": {Run: fn},
		"nilRun":    {Name: "test.nil"},
	} {
		t.Run(name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Fatal("Register did not panic")
				}
			}()
			Register(p)
		})
	}
}
