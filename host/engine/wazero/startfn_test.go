package wazero

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/blockhost/blockhost/host/engine"
	"github.com/blockhost/blockhost/host/engine/internal/wasmbin"
	"github.com/blockhost/blockhost/internal/testwasm"
)

func startFixture(t testing.TB, name string) []byte {
	return testwasm.WAT(t, filepath.Join("testdata", "start", name+".wat"))
}

// startedKey carries the channel "test"."started" signals on.
type startedKey struct{}

var startedModule = engine.HostModule{Name: "test", Functions: []engine.HostFunction{{
	Name: "started",
	Func: func(ctx context.Context, _ engine.Memory, _ []uint64) {
		if ch, ok := ctx.Value(startedKey{}).(chan struct{}); ok {
			ch <- struct{}{}
		}
	},
}}}

func newTestEngine(t testing.TB) *Engine {
	t.Helper()
	e, err := New(context.Background(), engine.Config{HostModules: []engine.HostModule{startedModule}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close(context.Background()) })
	return e.(*Engine)
}

func compileFixture(t testing.TB, e *Engine, name string) engine.Module {
	t.Helper()
	m, err := e.Compile(context.Background(), startFixture(t, name))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close(context.Background()) })
	return m
}

var runStart = engine.RunConfig{Entry: []string{"_start"}}

func TestExportStart(t *testing.T) {
	in := startFixture(t, "order")
	out, ok, err := exportStart(in)
	if err != nil || !ok {
		t.Fatalf("exportStart: %v, %v", ok, err)
	}
	m, err := wasmbin.Parse(out)
	if err != nil {
		t.Fatal(err)
	}
	if m.Index(wasmbin.SectionStart) >= 0 {
		t.Error("the start section is still there")
	}
	exports, err := wasmbin.ReadVec(m.Sections[m.Index(wasmbin.SectionExport)], (*wasmbin.Reader).Export)
	if err != nil {
		t.Fatal(err)
	}
	if last := exports[len(exports)-1]; last.Name != startExport || last.Kind != wasmbin.KindFunc || last.Index != 0 {
		t.Errorf("last export %+v, want the start function (0) as %q", last, startExport)
	}

	for _, name := range []string{"nostart", "taken"} {
		in := startFixture(t, name)
		if out, ok, err := exportStart(in); err != nil || ok || !bytes.Equal(out, in) {
			t.Errorf("%s: changed (%v, %v)", name, ok, err)
		}
	}
	bad := []byte(wasmbin.Header + "\x08\x01\x80")
	if out, _, err := exportStart(bad); !errors.Is(err, errMalformed) {
		t.Errorf("malformed start section: error %v", err)
	} else {
		checkSameSlice(t, bad, out)
	}
}

// TestRun_startFunctionRunsFirst: the start function, moved out of
// instantiation, still runs before the entry points, and its export is
// not the module's.
func TestRun_startFunctionRunsFirst(t *testing.T) {
	e := newTestEngine(t)
	m := compileFixture(t, e, "order")
	if _, err := m.Run(context.Background(), runStart); err != nil {
		t.Fatalf("Run: %v", err)
	}
	for _, ex := range m.Exports() {
		if ex.Name == startExport {
			t.Errorf("Exports lists %q", startExport)
		}
	}
}

// TestRun_startFunctionHoldsNoSlot: guests spinning in their start
// functions, more of them than there are instantiation slots, do not
// keep another step from instantiating.
func TestRun_startFunctionHoldsNoSlot(t *testing.T) {
	e := newTestEngine(t)
	spin, quick := compileFixture(t, e, "spin"), compileFixture(t, e, "nostart")
	ctx, cancel := context.WithCancel(context.Background())
	started := make(chan struct{})
	done := make(chan error)
	n := cap(e.slots) + 1
	for range n {
		go func() {
			_, err := spin.Run(context.WithValue(ctx, startedKey{}, started), runStart)
			done <- err
		}()
	}
	defer func() {
		cancel()
		for range n {
			if err := <-done; !errors.Is(err, engine.ErrInterrupted) {
				t.Errorf("spinning step: %v, want ErrInterrupted", err)
			}
		}
	}()
	hang := time.After(time.Minute) // a hang-catcher, not a timing bound
	for range n {
		select {
		case <-started:
		case <-hang:
			t.Fatal("the spinning start functions did not all start")
		}
	}
	qctx, qcancel := context.WithTimeout(context.Background(), time.Minute)
	defer qcancel()
	if _, err := quick.Run(qctx, runStart); err != nil {
		t.Fatalf("a step beside the spinning ones: %v", err)
	}
}

// TestRun_interruptedWaitingForSlot: a step whose context ends while every
// instantiation slot is taken ends as interrupted, without instantiating.
func TestRun_interruptedWaitingForSlot(t *testing.T) {
	e := newTestEngine(t)
	m := compileFixture(t, e, "nostart")
	for range cap(e.slots) {
		e.slots <- struct{}{}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := m.Run(ctx, runStart); !errors.Is(err, engine.ErrInterrupted) {
		t.Fatalf("Run with every slot taken: %v, want ErrInterrupted", err)
	}
	for range cap(e.slots) {
		<-e.slots
	}
	if _, err := m.Run(context.Background(), runStart); err != nil {
		t.Fatalf("Run with the slots free: %v", err)
	}
}
