//go:build !cgo

package wasmtime

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/blockhost/blockhost/host/engine"
)

// TestNoCgo: without cgo the name is registered, and creating the engine
// says why it cannot be had and what to do.
func TestNoCgo(t *testing.T) {
	f, ok := engine.Lookup(Name)
	if !ok {
		t.Fatal("wasmtime not registered")
	}
	_, err := f(context.Background(), engine.Config{})
	if !errors.Is(err, engine.ErrUnavailable) || !strings.Contains(err.Error(), "rebuild with CGO_ENABLED=1 or use --engine wazero") {
		t.Fatalf("error %v", err)
	}
}
