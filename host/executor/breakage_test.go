package executor

import (
	"context"
	"testing"
	"testing/synctest"

	"github.com/sony/gobreaker/v2"

	"github.com/blockhost/blockhost/abi"
	"github.com/blockhost/blockhost/host"
)

// Issue 10: deliberate breakages that once survived the suite. Each test
// here fails when the guard it names is removed.

// runnerFunc is a host.Runner that returns whatever fn does, unchanged —
// nil included, which fakeRunner cannot.
type runnerFunc func(ctx context.Context, step host.Step) *abi.StepResult

func (runnerFunc) Name() string { return "func" }

func (f runnerFunc) Run(ctx context.Context, step host.Step) *abi.StepResult { return f(ctx, step) }

// A runner that panics ends the step as internal_error, never success,
// and the executor keeps working.
func TestExecutor_panickingRunnerIsAnError(t *testing.T) {
	e := newExecutor(t, NewConfig())
	boom := runnerFunc(func(context.Context, host.Step) *abi.StepResult { panic("boom") })
	res := e.Run(t.Context(), Request{Runner: boom, Retry: RetryPolicy{MaxAttempts: 1}})
	wantStatus(t, res, abi.StatusError, abi.CodeInternalError)
	if res.Error.Class != abi.ClassPermanent {
		t.Errorf("class %s, want permanent", res.Error.Class)
	}
	ok := runnerFunc(func(context.Context, host.Step) *abi.StepResult { return success() })
	wantStatus(t, e.Run(t.Context(), Request{Runner: ok}), abi.StatusSuccess, 0)
}

// A runner that returns no result, or one with a status outside the four,
// ends the step as internal_error.
func TestExecutor_nilResultIsAnError(t *testing.T) {
	e := newExecutor(t, NewConfig())
	for name, r := range map[string]runnerFunc{
		"nil":        func(context.Context, host.Step) *abi.StepResult { return nil },
		"bad status": func(context.Context, host.Step) *abi.StepResult { return &abi.StepResult{Status: "done"} },
	} {
		res := e.Run(t.Context(), Request{Runner: r, Retry: RetryPolicy{MaxAttempts: 1}})
		if res == nil {
			t.Fatalf("%s: no result", name)
		}
		if res.Status != abi.StatusError || res.Error == nil || res.Error.Code != abi.CodeInternalError {
			t.Errorf("%s: %+v, want error internal_error", name, res)
		}
	}
}

// A cancelled attempt is no success for the breaker: two unhealthy
// failures, a cancellation, then a third failure are three consecutive
// failures and open the circuit. Counted as a success, the cancellation
// would reset the run and leave it closed.
func TestExecutor_breakerCancellationIsNoSuccess(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newExecutor(t, NewConfig().WithBreaker(BreakerConfig{ConsecutiveFailures: 3, MinRequests: 1000}))
		once := RetryPolicy{MaxAttempts: 1}
		down := newFake("down", func(context.Context, int, host.Step) *abi.StepResult { return retryable() })
		hang := newFake("hang", blockUntil(nil, nil))
		for range 2 {
			wantStatus(t, e.Run(t.Context(), Request{Runner: down, Dependency: "A", Retry: once}), abi.StatusError, abi.CodeResourceUnavailable)
		}
		tk := e.Submit(t.Context(), Request{Runner: hang, Dependency: "A", Retry: once})
		synctest.Wait()
		if hang.Calls() != 1 {
			t.Fatalf("the attempt to cancel did not start")
		}
		tk.Cancel()
		wantStatus(t, tk.Result(), abi.StatusCancelled, abi.CodeCancelledByUser)
		if st, _ := e.breakers.state("A"); st != gobreaker.StateClosed {
			t.Fatalf("circuit %s after two failures and a cancellation, want closed", st)
		}
		wantStatus(t, e.Run(t.Context(), Request{Runner: down, Dependency: "A", Retry: once}), abi.StatusError, abi.CodeResourceUnavailable)
		if st, _ := e.breakers.state("A"); st != gobreaker.StateOpen {
			t.Fatalf("circuit %s after three failures around a cancellation, want open", st)
		}
	})
}
