package executor

import (
	"context"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sony/gobreaker/v2"

	"github.com/blockhost/blockhost/abi"
	"github.com/blockhost/blockhost/host"
)

// Acceptance 8: five unhealthy failures in a row to dependency A open its
// circuit: the 6th step makes no attempt and fails fast; dependency B is
// unaffected; after the open interval exactly one probe passes and a
// concurrent second is refused.
func TestExecutor_breakerOpensPerDependency(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		reg := prometheus.NewRegistry()
		e := newExecutor(t, NewConfig().WithRegisterer(reg).WithBreaker(BreakerConfig{ConsecutiveFailures: 5, OpenFor: 30 * time.Second}))
		once := RetryPolicy{MaxAttempts: 1}
		down := newFake("a", func(context.Context, int, host.Step) *abi.StepResult { return retryable() })
		for i := range 5 {
			wantStatus(t, e.Run(t.Context(), Request{Runner: down, Dependency: "A", Retry: once}), abi.StatusError, abi.CodeResourceUnavailable)
			if st, _ := e.breakers.state("A"); (i < 4) != (st == gobreaker.StateClosed) {
				t.Fatalf("after %d failures the circuit is %s", i+1, st)
			}
		}
		start := time.Now()
		res := e.Run(t.Context(), Request{Runner: down, Dependency: "A", Retry: RetryPolicy{MaxAttempts: 3}})
		wantStatus(t, res, abi.StatusError, abi.CodeResourceUnavailable)
		if res.Attempts != 0 || down.Calls() != 5 || res.Error.Class != abi.ClassPermanent || time.Since(start) != 0 {
			t.Fatalf("open circuit: attempts %d calls %d class %s", res.Attempts, down.Calls(), res.Error.Class)
		}
		if ra, ok := res.Error.RetryAfter(); !ok || ra != 30*time.Second {
			t.Fatalf("retry after %v %v, want the 30s until half-open", ra, ok)
		}
		if v := metricValue(t, reg, "blockhost_executor_breaker_state", map[string]string{"dependency": "A", "state": "open"}); v != 1 {
			t.Fatalf("breaker_state{A,open} = %v", v)
		}

		b := newFake("b", func(context.Context, int, host.Step) *abi.StepResult { return success() })
		wantStatus(t, e.Run(t.Context(), Request{Runner: b, Dependency: "B"}), abi.StatusSuccess, 0)

		time.Sleep(30*time.Second + time.Millisecond)
		release := make(chan struct{})
		probe := newFake("probe", blockUntil(release, success))
		first := e.Submit(t.Context(), Request{Runner: probe, Dependency: "A"})
		synctest.Wait()
		second := e.Run(t.Context(), Request{Runner: probe, Dependency: "A"})
		wantStatus(t, second, abi.StatusError, abi.CodeResourceUnavailable)
		if probe.Calls() != 1 {
			t.Fatalf("%d probes passed, want 1", probe.Calls())
		}
		close(release)
		wantStatus(t, first.Result(), abi.StatusSuccess, 0)
		if st, _ := e.breakers.state("A"); st != gobreaker.StateClosed {
			t.Fatalf("after a successful probe the circuit is %s", st)
		}
	})
}

// Acceptance 9: cancellations and permanent errors say nothing about the
// dependency's health and leave its circuit closed.
func TestExecutor_breakerIgnoresCancelAndPermanent(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newExecutor(t, NewConfig().WithBreaker(BreakerConfig{ConsecutiveFailures: 5, MinRequests: 10}))
		hang := newFake("hang", blockUntil(nil, nil))
		bad := newFake("400", func(context.Context, int, host.Step) *abi.StepResult {
			return failure(abi.CodeHTTPError, abi.ClassPermanent)
		})
		var tickets []*Ticket
		for range 20 {
			tickets = append(tickets, e.Submit(t.Context(), Request{Runner: hang, Dependency: "A"}))
		}
		synctest.Wait()
		for _, tk := range tickets {
			tk.Cancel()
			wantStatus(t, tk.Result(), abi.StatusCancelled, abi.CodeCancelledByUser)
		}
		for range 20 {
			wantStatus(t, e.Run(t.Context(), Request{Runner: bad, Dependency: "A", Retry: RetryPolicy{MaxAttempts: 5}}), abi.StatusError, abi.CodeHTTPError)
		}
		if st, _ := e.breakers.state("A"); st != gobreaker.StateClosed {
			t.Fatalf("circuit %s, want closed", st)
		}
		if bad.Calls() != 20 {
			t.Fatalf("%d attempts of permanent errors, want 20", bad.Calls())
		}
	})
}

// The failure ratio over the rolling window opens a circuit whose
// failures are not consecutive.
func TestExecutor_breakerFailureRatio(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newExecutor(t, NewConfig().WithBreaker(BreakerConfig{ConsecutiveFailures: 100, FailureRatio: 0.5, MinRequests: 10}))
		r := newFake("half", func(_ context.Context, n int, _ host.Step) *abi.StepResult {
			if n%2 == 0 {
				return retryable()
			}
			return success()
		})
		for range 10 {
			e.Run(t.Context(), Request{Runner: r, Dependency: "A", Retry: RetryPolicy{MaxAttempts: 1}})
		}
		if st, _ := e.breakers.state("A"); st != gobreaker.StateOpen {
			t.Fatalf("circuit %s after 5 of 10 failed, want open", st)
		}
	})
}

// Acceptance 10: 100 concurrent steps against an always-retryable failure:
// every retry granted leaves the number retrying within max(3, 20% of
// the dependency's active steps), at no moment do more than 20 retry
// attempts run at once, and the budget denies the rest.
func TestExecutor_retryBudget(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newExecutor(t, NewConfig().
			WithPool(DefaultPool, PoolConfig{Concurrency: 100, QueueSize: 0}).
			WithBreaker(BreakerConfig{Disabled: true}))
		var (
			mu               sync.Mutex
			granted, denied  int
			retryingNow, top int
		)
		e.testHookBudget = func(dep string, ok bool, retrying, limit int) {
			mu.Lock()
			defer mu.Unlock()
			if ok && retrying > limit {
				t.Errorf("a retry granted with %d retrying, over the limit %d", retrying, limit)
			}
			if ok {
				granted++
			} else {
				denied++
			}
		}
		// Count concurrent retry attempts: the runner tells a step's
		// attempts apart by the step ID they share.
		var seen sync.Map
		wrapped := newFake("down", func(_ context.Context, _ int, step host.Step) *abi.StepResult {
			prev, _ := seen.LoadOrStore(step.ID, 0)
			k := prev.(int) + 1
			seen.Store(step.ID, k)
			if k > 1 {
				mu.Lock()
				retryingNow++
				top = max(top, retryingNow)
				mu.Unlock()
				defer func() { mu.Lock(); retryingNow--; mu.Unlock() }()
			}
			time.Sleep(10 * time.Millisecond)
			return retryable()
		})
		var tickets []*Ticket
		for range 100 {
			tickets = append(tickets, e.Submit(t.Context(), Request{Runner: wrapped, Dependency: "A",
				Retry: RetryPolicy{MaxAttempts: 4, Initial: 50 * time.Millisecond, MaxInterval: 50 * time.Millisecond}}))
		}
		retries := 0
		for _, tk := range tickets {
			res := tk.Result()
			wantStatus(t, res, abi.StatusError, abi.CodeResourceUnavailable)
			retries += res.RetriesUsed
		}
		if top > 20 {
			t.Errorf("%d retry attempts ran at once, want at most 20", top)
		}
		if denied == 0 || retries >= 300 {
			t.Errorf("budget never bit: %d retries, %d denied", retries, denied)
		}
		t.Logf("100 steps: %d retries granted, %d denied, at most %d retry attempts at once", granted, denied, top)
	})
}
