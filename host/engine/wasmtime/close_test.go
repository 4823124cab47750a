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

// TestRetire_closerBehind: a run with a CPU left for the closer still
// deletes its own store when another store waits for the closer, here
// held back from deleting the one it took.
func TestRetire_closerBehind(t *testing.T) {
	e := newTestEngine(t)
	m := compile(t, e, filepath.Join("testdata", "residue.wat"))
	loop := compile(t, e, filepath.Join(testwasm.ModuleRoot(t), "host", "testdata", "loop.wat"))
	runtime.GOMAXPROCS(2)
	defer runtime.SetDefaultGOMAXPROCS()
	gate := make(chan struct{})
	e.closerGate.Store(&gate)
	defer func() {
		e.closerGate.Store(nil)
		close(gate)
	}()
	// Two interrupted runs go to the closer, which holds at most one of
	// them at the gate: the other waits.
	for range 2 {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
		_, err := loop.Run(ctx, engine.RunConfig{Entry: []string{"_start"}})
		cancel()
		if !errors.Is(err, engine.ErrInterrupted) {
			t.Fatalf("the looping run: %v, want interrupted", err)
		}
	}
	before := e.deletedInline.Load()
	if _, err := m.Run(context.Background(), engine.RunConfig{Entry: []string{"read"}}); err != nil {
		t.Fatal(err)
	}
	if n := e.deletedInline.Load() - before; n != 1 {
		t.Errorf("two CPUs, one run, a store waiting for the closer: %d stores deleted by their run, want 1", n)
	}
}

// TestDeleteInline: the rule retire follows. A run deletes its own store
// when the steps running and the stores waiting for the closer fill the
// CPUs; an interrupted run never does (its result must not wait).
func TestDeleteInline(t *testing.T) {
	for _, c := range []struct {
		interrupted bool
		others      int64
		procs       int
		waiting     int
		want        bool
	}{
		{false, 0, 1, 0, true},  // this run fills the only CPU
		{false, 1, 2, 0, true},  // both CPUs run a step
		{false, 0, 2, 0, false}, // a CPU for the closer, which has nothing to do
		{false, 0, 2, 1, true},  // a CPU for the closer, which is behind
		{false, 0, 4, 3, true},  // the stores waiting fill the CPUs left
		{false, 0, 4, 2, false}, // a CPU still spare for the closer
		{false, 2, 4, 1, true},
		{false, 2, 4, 0, false},
		{false, 1, 16, 1, false}, // behind, but with CPUs to spare
		{true, 1, 2, 0, false},   // interrupted: the closer's, however busy
		{true, 0, 2, 5, false},
	} {
		if got := deleteInline(c.interrupted, c.others, c.procs, c.waiting); got != c.want {
			t.Errorf("deleteInline(interrupted %v, %d others, %d CPUs, %d waiting) = %v, want %v",
				c.interrupted, c.others, c.procs, c.waiting, got, c.want)
		}
	}
}
