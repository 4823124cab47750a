//go:build cgo

package wasmtime

import (
	"context"
	"errors"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/blockhost/blockhost/host/engine"
	"github.com/blockhost/blockhost/host/engine/internal/enginetest"
	"github.com/blockhost/blockhost/internal/testwasm"
)

// TestClose: closing a module or the engine never frees what a run in
// flight uses (images, ranges, stores, the linker), waits for it, and
// refuses runs and compilations after.
func TestClose(t *testing.T) {
	enginetest.Close(t, func(t *testing.T) engine.Engine { return newTestEngine(t) })
}

// TestRetire_inline: a run deletes its own store when every CPU is
// running a step (here, GOMAXPROCS 1 and this run), and hands it to the
// closer when a CPU is left for it or when the run was interrupted, the
// deletion then kept off the result's path.
func TestRetire_inline(t *testing.T) {
	e := newTestEngine(t)
	m := compile(t, e, filepath.Join("testdata", "residue.wat"))
	loop := compile(t, e, filepath.Join(testwasm.ModuleRoot(t), "host", "testdata", "loop.wat"))
	run := func(procs int, interrupt bool) int64 {
		t.Helper()
		runtime.GOMAXPROCS(procs)
		defer runtime.SetDefaultGOMAXPROCS() // and its updates, which setting it turned off
		before := e.deletedInline.Load()
		if interrupt {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
			defer cancel()
			if _, err := loop.Run(ctx, engine.RunConfig{Entry: []string{"_start"}}); !errors.Is(err, engine.ErrInterrupted) {
				t.Fatalf("the looping run: %v, want interrupted", err)
			}
		} else if _, err := m.Run(context.Background(), engine.RunConfig{Entry: []string{"read"}}); err != nil {
			t.Fatal(err)
		}
		return e.deletedInline.Load() - before
	}
	if n := run(1, false); n != 1 {
		t.Errorf("one CPU, busy with the run: %d stores deleted by their run, want 1", n)
	}
	if n := run(2, false); n != 0 {
		t.Errorf("two CPUs, one run: %d stores deleted by their run, want 0 (the closer's)", n)
	}
	if n := run(4, false); n != 0 {
		t.Errorf("four CPUs, one run: %d stores deleted by their run, want 0 (the closer's)", n)
	}
	if n := run(1, true); n != 0 {
		t.Errorf("one CPU, an interrupted run: %d stores deleted by their run, want 0 (the closer's)", n)
	}
}
