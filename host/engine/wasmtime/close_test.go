//go:build cgo

package wasmtime

import (
	"testing"

	"github.com/blockhost/blockhost/host/engine"
	"github.com/blockhost/blockhost/host/engine/internal/enginetest"
)

// TestClose: closing a module or the engine never frees what a run in
// flight uses (images, ranges, stores, the linker), waits for it, and
// refuses runs and compilations after.
func TestClose(t *testing.T) {
	enginetest.Close(t, func(t *testing.T) engine.Engine { return newTestEngine(t) })
}
