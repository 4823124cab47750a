//go:build !cgo

package wasmtime

import (
	"context"

	"github.com/blockhost/blockhost/host/engine"
)

func init() {
	engine.Register(Name, func(context.Context, engine.Config) (engine.Engine, error) {
		return nil, errNoCgo{}
	})
}

// errNoCgo is the error of the wasmtime engine in a binary built without
// cgo. It matches engine.ErrUnavailable.
type errNoCgo struct{}

func (errNoCgo) Error() string {
	return "this blockhost was built without cgo, so the wasmtime engine is unavailable; " +
		"rebuild with CGO_ENABLED=1 or use --engine wazero"
}

func (errNoCgo) Is(target error) bool { return target == engine.ErrUnavailable }
