package executor

import (
	"context"
	"errors"
	"math"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/blockhost/blockhost/abi"
	"github.com/blockhost/blockhost/host"
)

// fakeRunner is a host.Runner whose every attempt calls fn with the
// attempt's number (from 1, counted over all steps that use the runner).
type fakeRunner struct {
	name string
	fn   func(ctx context.Context, n int, step host.Step) *abi.StepResult

	mu     sync.Mutex
	calls  int
	starts []time.Time
}

var _ host.Runner = (*fakeRunner)(nil)

func newFake(name string, fn func(ctx context.Context, n int, step host.Step) *abi.StepResult) *fakeRunner {
	return &fakeRunner{name: name, fn: fn}
}

func (f *fakeRunner) Name() string { return f.name }

func (f *fakeRunner) Run(ctx context.Context, step host.Step) *abi.StepResult {
	f.mu.Lock()
	f.calls++
	n := f.calls
	f.starts = append(f.starts, time.Now())
	f.mu.Unlock()
	res := f.fn(ctx, n, step)
	res.StepID, res.Block, res.Attempts = step.ID, f.name, 1
	return res
}

func (f *fakeRunner) Calls() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls
}

func (f *fakeRunner) Starts() []time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]time.Time(nil), f.starts...)
}

func success() *abi.StepResult {
	return &abi.StepResult{Status: abi.StatusSuccess, Output: []byte(`{"ok":true}`)}
}

func failure(code abi.Code, class abi.Class) *abi.StepResult {
	return &abi.StepResult{Status: abi.StatusError, Error: abi.NewError(code, class, "fake "+code.Name())}
}

func retryable() *abi.StepResult { return failure(abi.CodeResourceUnavailable, abi.ClassRetryable) }

// ended is what an honest runner returns once ctx is done.
func ended(ctx context.Context) *abi.StepResult {
	if isTimeout(context.Cause(ctx)) {
		return &abi.StepResult{Status: abi.StatusTimeout, Error: abi.NewError(abi.CodeCancelledByTimeout, abi.ClassPermanent, "deadline")}
	}
	return &abi.StepResult{Status: abi.StatusCancelled, Error: abi.NewError(abi.CodeCancelledByUser, abi.ClassPermanent, "cancelled")}
}

// blockUntil returns a runner body that waits for release or for ctx, as
// a block waiting in a host call does.
func blockUntil(release <-chan struct{}, then func() *abi.StepResult) func(context.Context, int, host.Step) *abi.StepResult {
	return func(ctx context.Context, _ int, _ host.Step) *abi.StepResult {
		select {
		case <-release:
			return then()
		case <-ctx.Done():
			return ended(ctx)
		}
	}
}

// constSource is a rand.Source returning one value: all ones makes every
// full-jitter draw its upper bound, zero makes it zero.
type constSource uint64

func (c constSource) Uint64() uint64 { return uint64(c) }

const maxDraw = constSource(math.MaxUint64)

func newExecutor(t testing.TB, cfg Config) *Executor {
	t.Helper()
	e, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := e.Close(ctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("close: %v", err)
		}
	})
	return e
}

func wantStatus(t *testing.T, res *abi.StepResult, status abi.Status, code abi.Code) {
	t.Helper()
	if res.Status != status {
		t.Fatalf("status %s, want %s; result %+v error %+v", res.Status, status, res, res.Error)
	}
	if code != 0 && (res.Error == nil || res.Error.Code != code) {
		t.Fatalf("error %+v, want code %s", res.Error, code)
	}
	if code == 0 && res.Error != nil {
		t.Fatalf("unexpected error %+v", res.Error)
	}
}

func metricValue(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	sum := 0.0
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metric:
		for _, m := range mf.Metric {
			for k, v := range labels {
				found := false
				for _, lp := range m.Label {
					if lp.GetName() == k && lp.GetValue() == v {
						found = true
					}
				}
				if !found {
					continue metric
				}
			}
			switch {
			case m.Counter != nil:
				sum += m.Counter.GetValue()
			case m.Gauge != nil:
				sum += m.Gauge.GetValue()
			case m.Histogram != nil:
				sum += float64(m.Histogram.GetSampleCount())
			}
		}
	}
	return sum
}

func errorsAs(err error, target any) bool { return errors.As(err, target) }
