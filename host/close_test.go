package host_test

import (
	"context"
	"errors"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/blockhost/blockhost/abi"
	"github.com/blockhost/blockhost/host"
	"github.com/blockhost/blockhost/host/engine"
	"github.com/blockhost/blockhost/internal/testwasm"
)

// TestRuntime_Close_stepInFlight: closing a runtime under a running step
// waits for it, and the step ends by its own timeout with everything it
// used; a step run after Close ends as an error naming the closed
// runtime, and a Load is refused.
func TestRuntime_Close_stepInFlight(t *testing.T) {
	for _, name := range engine.Names() {
		t.Run(name, func(t *testing.T) {
			started := &lineSignal{ch: make(chan struct{})}
			logger := hclog.New(&hclog.LoggerOptions{Output: started, Level: hclog.Info})
			rt, err := host.NewRuntime(context.Background(), host.NewRuntimeConfig().WithEngine(name).WithLogger(logger))
			if errors.Is(err, engine.ErrUnavailable) {
				t.Skip(err)
			}
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { rt.Close(context.Background()) })
			b := load(t, rt, "noteloop")
			results := make(chan *abi.StepResult, 1)
			go func() {
				results <- b.Run(context.Background(), host.Step{Limits: host.Limits{Timeout: 300 * time.Millisecond}})
			}()
			select {
			case <-started.ch:
			case <-time.After(10 * time.Second):
				t.Fatal("the step did not start within 10 s")
			}
			closed := make(chan error, 1)
			go func() { closed <- rt.Close(context.Background()) }()
			var res *abi.StepResult
			select {
			case res = <-results:
			case <-time.After(20 * time.Second):
				t.Fatal("the step did not end within 20 s")
			}
			if res.Status != abi.StatusTimeout {
				t.Errorf("step closed under: status %s (%v), want timeout", res.Status, res.Error)
			}
			select {
			case err := <-closed:
				if err != nil {
					t.Fatalf("Close: %v", err)
				}
			case <-time.After(20 * time.Second):
				t.Fatal("Close did not return within 20 s of the step's end")
			}
			after := b.Run(context.Background(), host.Step{})
			if after.Status != abi.StatusError || after.Error == nil || after.Error.Code != abi.CodeResourceUnavailable {
				t.Errorf("step after Close: status %s, error %v; want error, resource_unavailable", after.Status, after.Error)
			}
			if _, err := rt.Load(context.Background(), "trap", testwasm.WAT(t, filepath.Join("testdata", "trap.wat"))); !errors.Is(err, host.ErrClosed) {
				t.Errorf("Load after Close: %v, want ErrClosed", err)
			}
		})
	}
}

// lineSignal closes ch at the first log record.
type lineSignal struct {
	once sync.Once
	ch   chan struct{}
}

func (w *lineSignal) Write(p []byte) (int, error) {
	w.once.Do(func() { close(w.ch) })
	return len(p), nil
}
