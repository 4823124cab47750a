// Package enginetest holds contract tests that every engine runs against
// itself, so that both engines are held to the same words of package
// engine.
package enginetest

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/blockhost/blockhost/host/engine"
	"github.com/blockhost/blockhost/internal/testwasm"
)

// NewEngine makes an engine for a test, providing the host function
// "test"."probe"(i32) -> i32 that host/testdata/engine.wat imports. The
// test closes the engine itself; registering a cleanup that closes it
// again must be harmless.
type NewEngine func(t *testing.T) engine.Engine

// Close checks what the package comment of engine promises of closing:
// a run in flight keeps what it uses and ends by its own context, Close
// waits for it (up to its ctx), and a Run or Compile after Close returns
// ErrClosed, however runs and closes interleave.
func Close(t *testing.T, newEngine NewEngine) {
	t.Run("run after close", func(t *testing.T) {
		e := newEngine(t)
		m := compile(t, e)
		if err := m.Close(context.Background()); err != nil {
			t.Fatalf("Close: %v", err)
		}
		if _, err := m.Run(context.Background(), engine.RunConfig{Entry: []string{"return"}}); !errors.Is(err, engine.ErrClosed) {
			t.Fatalf("Run after Module.Close: %v, want ErrClosed", err)
		}
		if err := m.Close(context.Background()); err != nil {
			t.Fatalf("second Close: %v", err)
		}
		other := compile(t, e)
		if err := e.Close(context.Background()); err != nil {
			t.Fatalf("Engine.Close: %v", err)
		}
		if _, err := other.Run(context.Background(), engine.RunConfig{Entry: []string{"return"}}); !errors.Is(err, engine.ErrClosed) {
			t.Fatalf("Run after Engine.Close: %v, want ErrClosed", err)
		}
		if _, err := e.Compile(context.Background(), wasm(t)); !errors.Is(err, engine.ErrClosed) {
			t.Fatalf("Compile after Engine.Close: %v, want ErrClosed", err)
		}
		if err := e.Close(context.Background()); err != nil {
			t.Fatalf("second Engine.Close: %v", err)
		}
	})

	t.Run("module close waits for a run", func(t *testing.T) {
		e := newEngine(t)
		m := compile(t, e)
		r := startSpin(t, m)
		closed := closeAsync(context.Background(), m.Close)
		waitClosed(t, m)
		select {
		case err := <-closed:
			t.Fatalf("Module.Close returned (%v) with a run in flight", err)
		default:
		}
		r.finish(t)
		if err := waitFor(t, closed, "Module.Close"); err != nil {
			t.Fatalf("Module.Close: %v", err)
		}
		// The engine still runs its other modules.
		if _, err := compile(t, e).Run(context.Background(), engine.RunConfig{Entry: []string{"return"}}); err != nil {
			t.Fatalf("another module after Module.Close: %v", err)
		}
	})

	t.Run("engine close waits for a run", func(t *testing.T) {
		e := newEngine(t)
		m, idle := compile(t, e), compile(t, e)
		r := startSpin(t, m)
		closed := closeAsync(context.Background(), e.Close)
		waitClosed(t, idle)
		select {
		case err := <-closed:
			t.Fatalf("Engine.Close returned (%v) with a run in flight", err)
		default:
		}
		if _, err := e.Compile(context.Background(), wasm(t)); !errors.Is(err, engine.ErrClosed) {
			t.Fatalf("Compile on a closing engine: %v, want ErrClosed", err)
		}
		r.finish(t)
		if err := waitFor(t, closed, "Engine.Close"); err != nil {
			t.Fatalf("Engine.Close: %v", err)
		}
	})

	t.Run("close gives up at its deadline", func(t *testing.T) {
		e := newEngine(t)
		m := compile(t, e)
		r := startSpin(t, m)
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
		defer cancel()
		if err := m.Close(ctx); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Module.Close with a run in flight past its deadline: %v", err)
		}
		if err := e.Close(ctx); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Engine.Close with a run in flight past its deadline: %v", err)
		}
		// The run still has everything it uses: it ends as interrupted, and
		// then the engine is released.
		r.finish(t)
		if err := waitFor(t, closeAsync(context.Background(), e.Close), "Engine.Close"); err != nil {
			t.Fatalf("Engine.Close after the run: %v", err)
		}
	})

	t.Run("concurrent runs and closes", func(t *testing.T) {
		e := newEngine(t)
		var wg sync.WaitGroup
		var runs, refused atomic.Int64
		for round := range 6 {
			m := compile(t, e)
			for i := range 3 {
				wg.Go(func() {
					for {
						// Spins interrupted by a short deadline, and plain
						// returns, so that closes meet runs at every stage.
						entry, d := "return", time.Hour
						if i == 0 {
							entry, d = "spin", time.Millisecond
						}
						ctx, cancel := context.WithTimeout(context.Background(), d)
						_, err := m.Run(ctx, engine.RunConfig{Entry: []string{entry}})
						cancel()
						switch {
						case errors.Is(err, engine.ErrClosed):
							refused.Add(1)
							return
						case err == nil || errors.Is(err, engine.ErrInterrupted):
							runs.Add(1)
						default:
							t.Errorf("round %d: Run: %v", round, err)
							return
						}
					}
				})
			}
			time.Sleep(5 * time.Millisecond)
			if round == 5 {
				// The last round closes the engine under the runs.
				if err := e.Close(context.Background()); err != nil {
					t.Errorf("Engine.Close: %v", err)
				}
			} else if err := m.Close(context.Background()); err != nil {
				t.Errorf("Module.Close: %v", err)
			}
			wg.Wait()
		}
		if runs.Load() == 0 || refused.Load() == 0 {
			t.Errorf("%d runs and %d refused: the test exercised nothing", runs.Load(), refused.Load())
		}
	})
}

func wasm(t *testing.T) []byte {
	return testwasm.WAT(t, filepath.Join(testwasm.ModuleRoot(t), "host", "testdata", "engine.wat"))
}

func compile(t *testing.T, e engine.Engine) engine.Module {
	t.Helper()
	m, err := e.Compile(context.Background(), wasm(t))
	if err != nil {
		t.Fatalf("compile engine.wat: %v", err)
	}
	return m
}

// spin is a run in flight: it wrote to its standard output, then loops
// until cancel.
type spin struct {
	cancel context.CancelFunc
	done   chan error
}

// startSpin starts a run of m that echoes a byte, then spins, and returns
// once the guest is running.
func startSpin(t *testing.T, m engine.Module) *spin {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	started := &signalWriter{ch: make(chan struct{})}
	r := &spin{cancel: cancel, done: make(chan error, 1)}
	go func() {
		_, err := m.Run(ctx, engine.RunConfig{
			Entry:  []string{"echo", "spin"},
			Stdin:  strings.NewReader("x"),
			Stdout: started,
		})
		r.done <- err
	}()
	select {
	case <-started.ch:
	case err := <-r.done:
		t.Fatalf("the spinning run ended before it spun: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("the spinning run did not start within 10 s")
	}
	return r
}

// finish ends the run and checks that it ended as interrupted, having
// had all it used.
func (r *spin) finish(t *testing.T) {
	t.Helper()
	r.cancel()
	if err := waitFor(t, r.done, "the spinning run"); !errors.Is(err, engine.ErrInterrupted) {
		t.Fatalf("the spinning run: %v, want ErrInterrupted", err)
	}
}

// waitClosed waits until m refuses runs: its Close has begun.
func waitClosed(t *testing.T, m engine.Module) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; {
		_, err := m.Run(context.Background(), engine.RunConfig{Entry: []string{"return"}})
		if errors.Is(err, engine.ErrClosed) {
			return
		}
		if err != nil {
			t.Fatalf("Run while waiting for Close: %v", err)
		}
		if time.Now().After(deadline) {
			t.Fatal("the module still runs 10 s after Close began")
		}
		time.Sleep(time.Millisecond)
	}
}

func closeAsync(ctx context.Context, close func(context.Context) error) chan error {
	ch := make(chan error, 1)
	go func() { ch <- close(ctx) }()
	return ch
}

// waitFor is a hang-catcher: generous, since the machine may be busy.
func waitFor(t *testing.T, ch chan error, what string) error {
	t.Helper()
	select {
	case err := <-ch:
		return err
	case <-time.After(20 * time.Second):
		t.Fatalf("%s did not return within 20 s", what)
		return nil
	}
}

type signalWriter struct {
	once sync.Once
	ch   chan struct{}
}

func (w *signalWriter) Write(p []byte) (int, error) {
	w.once.Do(func() { close(w.ch) })
	return len(p), nil
}
