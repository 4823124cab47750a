package executor

import (
	"context"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/blockhost/blockhost/abi"
	"github.com/blockhost/blockhost/host"
	"github.com/blockhost/blockhost/host/capability"
)

// A request that names no dependency learns one from its attempt's
// capability operations (capability.ReportDependency): retryable failures
// after an operation found sql:x unhealthy open sql:x's breaker, stop the
// step's next attempt there, and leave a step whose operation found the
// dependency unhealthy but then saw it answer uncounted.
func TestExecutor_dependencyFromCapabilities(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newExecutor(t, NewConfig().WithRetryBudget(BudgetConfig{Disabled: true}))
		down := newFake("down", func(ctx context.Context, _ int, _ host.Step) *abi.StepResult {
			capability.ReportDependency(ctx, "sql:x", true)
			return retryable()
		})
		recovered := newFake("recovered", func(ctx context.Context, _ int, _ host.Step) *abi.StepResult {
			capability.ReportDependency(ctx, "sql:y", true)
			capability.ReportDependency(ctx, "sql:y", false)
			return retryable()
		})
		once := RetryPolicy{MaxAttempts: 1}
		for range 5 {
			wantStatus(t, e.Run(t.Context(), Request{Runner: down, Retry: once}), abi.StatusError, abi.CodeResourceUnavailable)
			wantStatus(t, e.Run(t.Context(), Request{Runner: recovered, Retry: once}), abi.StatusError, abi.CodeResourceUnavailable)
		}
		states := e.BreakerStates()
		if states["sql:x"] != "open" {
			t.Fatalf("breakers %v: sql:x is not open after 5 failures attributed to it", states)
		}
		if s, ok := states["sql:y"]; ok {
			t.Errorf("breakers %v: sql:y answered after failing, yet it has a breaker (%s)", states, s)
		}
		// A step that retries: its first attempt names sql:x, whose open
		// circuit refuses the second.
		res := e.Run(t.Context(), Request{Runner: down, Retry: RetryPolicy{MaxAttempts: 3, Initial: time.Millisecond, MaxInterval: time.Millisecond}})
		wantStatus(t, res, abi.StatusError, abi.CodeResourceUnavailable)
		if res.Attempts != 1 || res.Error.Class != abi.ClassPermanent || res.Error.RetryAfterMS == nil {
			t.Errorf("after a failure on sql:x, its open circuit did not stop the retry: attempts %d, error %+v", res.Attempts, res.Error)
		}
		// A request's own dependency keeps its breaker closed: the
		// failure counts against sql:x, not against it.
		res = e.Run(t.Context(), Request{Runner: down, Dependency: "other", Retry: once})
		wantStatus(t, res, abi.StatusError, abi.CodeResourceUnavailable)
		if s := e.BreakerStates()["other"]; s == "open" {
			t.Errorf("the request's dependency took the failure of sql:x: %s", s)
		}
	})
}

// The retry budget applies to a dependency learned from the capabilities:
// of many steps failing on sql:x at once, at most MinRetries retry.
func TestExecutor_budgetOfLearnedDependency(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newExecutor(t, NewConfig().
			WithPool(DefaultPool, PoolConfig{Concurrency: 20, QueueSize: 0}).
			WithBreaker(BreakerConfig{Disabled: true}).
			WithRetryBudget(BudgetConfig{MinRetries: 2, Ratio: 0.01}))
		var (
			mu             sync.Mutex
			deps           = map[string]int{}
			granted, nopes int
		)
		e.testHookBudget = func(dep string, ok bool, _, _ int) {
			mu.Lock()
			defer mu.Unlock()
			deps[dep]++
			if ok {
				granted++
			} else {
				nopes++
			}
		}
		down := newFake("down", func(ctx context.Context, _ int, _ host.Step) *abi.StepResult {
			capability.ReportDependency(ctx, "sql:x", true)
			time.Sleep(10 * time.Millisecond)
			return retryable()
		})
		var tickets []*Ticket
		for range 20 {
			tickets = append(tickets, e.Submit(t.Context(), Request{Runner: down,
				Retry: RetryPolicy{MaxAttempts: 2, Initial: 50 * time.Millisecond, MaxInterval: 50 * time.Millisecond}}))
		}
		for _, tk := range tickets {
			tk.Result()
		}
		mu.Lock()
		defer mu.Unlock()
		if deps["sql:x"] != 20 || len(deps) != 1 {
			t.Fatalf("budget decisions by dependency %v, want 20 for sql:x", deps)
		}
		if granted > 2 || nopes < 18 {
			t.Errorf("%d retries granted and %d denied, want at most 2 granted", granted, nopes)
		}
	})
}
