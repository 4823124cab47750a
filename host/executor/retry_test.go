package executor

import (
	"context"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/blockhost/blockhost/abi"
	"github.com/blockhost/blockhost/host"
)

// Acceptance 1: a permanent error (or an HTTP 400) is tried exactly once,
// whatever max_attempts says.
func TestExecutor_permanentErrorNotRetried(t *testing.T) {
	for _, tc := range []struct {
		name string
		code abi.Code
	}{{"executionFailed", abi.CodeExecutionFailed}, {"http400", abi.CodeHTTPError}} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				e := newExecutor(t, NewConfig())
				r := newFake("perm", func(context.Context, int, host.Step) *abi.StepResult {
					return failure(tc.code, abi.ClassPermanent)
				})
				res := e.Run(t.Context(), Request{Runner: r, Retry: RetryPolicy{MaxAttempts: 5}})
				wantStatus(t, res, abi.StatusError, tc.code)
				if res.Attempts != 1 || res.RetriesUsed != 0 || r.Calls() != 1 || res.Error.Class != abi.ClassPermanent {
					t.Fatalf("attempts %d retries %d calls %d class %s", res.Attempts, res.RetriesUsed, r.Calls(), res.Error.Class)
				}
			})
		})
	}
}

// Acceptance 2: two retryable failures, then success.
func TestExecutor_retryThenSuccess(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newExecutor(t, NewConfig())
		r := newFake("flaky", func(_ context.Context, n int, _ host.Step) *abi.StepResult {
			if n <= 2 {
				return retryable()
			}
			return success()
		})
		res := e.Run(t.Context(), Request{Runner: r, Step: host.Step{ID: "s1"}})
		wantStatus(t, res, abi.StatusSuccess, 0)
		if res.Attempts != 3 || res.RetriesUsed != 2 || res.StepID != "s1" || string(res.Output) != `{"ok":true}` {
			t.Fatalf("result %+v", res)
		}
	})
}

// Acceptance 3: always retryable, max_attempts 4, initial 100ms, max
// 250ms: exactly 4 attempts, and the n-th wait lies in
// [0, min(250ms, 100ms·2^(n−1))] — checked for the largest and smallest
// draws and for many random ones.
func TestExecutor_backoffFullJitter(t *testing.T) {
	policy := RetryPolicy{MaxAttempts: 4, Initial: 100 * time.Millisecond, MaxInterval: 250 * time.Millisecond, Multiplier: 2}
	bounds := []time.Duration{100 * time.Millisecond, 200 * time.Millisecond, 250 * time.Millisecond}
	run := func(t *testing.T, cfg Config) []time.Duration {
		var waits []time.Duration
		synctest.Test(t, func(t *testing.T) {
			e := newExecutor(t, cfg)
			r := newFake("down", func(context.Context, int, host.Step) *abi.StepResult { return retryable() })
			res := e.Run(t.Context(), Request{Runner: r, Retry: policy})
			wantStatus(t, res, abi.StatusError, abi.CodeResourceUnavailable)
			if res.Attempts != 4 || r.Calls() != 4 {
				t.Fatalf("attempts %d, calls %d, want 4", res.Attempts, r.Calls())
			}
			starts := r.Starts()
			for i := 1; i < len(starts); i++ {
				waits = append(waits, starts[i].Sub(starts[i-1]))
			}
		})
		return waits
	}
	t.Run("largestDraw", func(t *testing.T) {
		waits := run(t, NewConfig().WithRandSource(maxDraw))
		for i, w := range waits {
			if w != bounds[i] {
				t.Errorf("wait %d = %s, want the bound %s", i+1, w, bounds[i])
			}
		}
	})
	t.Run("smallestDraw", func(t *testing.T) {
		for i, w := range run(t, NewConfig().WithRandSource(constSource(0))) {
			if w != 0 {
				t.Errorf("wait %d = %s, want 0", i+1, w)
			}
		}
	})
	t.Run("random", func(t *testing.T) {
		var sum [3]time.Duration
		const runs = 200
		for range runs {
			for i, w := range run(t, NewConfig()) {
				if w < 0 || w > bounds[i] {
					t.Fatalf("wait %d = %s, outside [0, %s]", i+1, w, bounds[i])
				}
				sum[i] += w
			}
		}
		// Full jitter: the mean is half the bound; with 200 draws it is
		// well within 25% of it.
		for i, s := range sum {
			mean := s / runs
			if mean < bounds[i]*3/8 || mean > bounds[i]*5/8 {
				t.Errorf("mean wait %d = %s, want about %s", i+1, mean, bounds[i]/2)
			}
		}
	})
}

func TestBackoffCap_overflowClamped(t *testing.T) {
	p := RetryPolicy{Initial: time.Second, Multiplier: 10, MaxInterval: 30 * time.Second}
	for _, n := range []int{1, 2, 3, 100, 1 << 20, 1<<31 - 1} {
		got := backoffCap(&p, n)
		if got <= 0 || got > p.MaxInterval {
			t.Fatalf("cap(%d) = %s", n, got)
		}
	}
	if got := backoffCap(&p, 2); got != 10*time.Second {
		t.Fatalf("cap(2) = %s, want 10s", got)
	}
	huge := RetryPolicy{Initial: time.Second, Multiplier: 2, MaxInterval: time.Duration(1<<63 - 1)}
	if got := newJitter(maxDraw).wait(&huge, 200, 0); got != huge.MaxInterval {
		t.Fatalf("wait = %s, want the max interval", got)
	}
}

// Acceptance 4: total deadline 1s, the first attempt fails at 0.9s, the
// next wait would be 300ms: no second attempt; timeout at 0.9s with the
// last error kept.
func TestExecutor_totalDeadlineStopsBeforeWait(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newExecutor(t, NewConfig().WithRandSource(maxDraw))
		r := newFake("slow", func(context.Context, int, host.Step) *abi.StepResult {
			time.Sleep(900 * time.Millisecond)
			return retryable()
		})
		start := time.Now()
		res := e.Run(t.Context(), Request{Runner: r, TotalDeadline: time.Second,
			Retry: RetryPolicy{MaxAttempts: 5, Initial: 300 * time.Millisecond, MaxInterval: 300 * time.Millisecond}})
		if took := time.Since(start); took != 900*time.Millisecond {
			t.Errorf("returned after %s, want 900ms", took)
		}
		wantStatus(t, res, abi.StatusTimeout, abi.CodeResourceUnavailable)
		if res.Attempts != 1 || r.Calls() != 1 {
			t.Fatalf("attempts %d calls %d, want 1", res.Attempts, r.Calls())
		}
		if !strings.HasPrefix(res.Error.Message, "fake resource_unavailable") || !strings.Contains(res.Error.Message, "total deadline") {
			t.Fatalf("message %q does not keep the last error and say why", res.Error.Message)
		}
		time.Sleep(5 * time.Second)
		if r.Calls() != 1 {
			t.Fatalf("a second attempt ran")
		}
	})
}

// The total deadline passing during an attempt ends it as timeout.
func TestExecutor_totalDeadlineDuringAttempt(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newExecutor(t, NewConfig())
		r := newFake("hang", blockUntil(nil, nil))
		start := time.Now()
		res := e.Run(t.Context(), Request{Runner: r, TotalDeadline: 2 * time.Second})
		wantStatus(t, res, abi.StatusTimeout, abi.CodeCancelledByTimeout)
		if time.Since(start) != 2*time.Second || !strings.Contains(res.Error.Message, "total deadline of 2s") {
			t.Fatalf("after %s: %q", time.Since(start), res.Error.Message)
		}
	})
}

// Acceptance 5: cancel 50ms into a 10s backoff: cancelled at 50ms, one
// attempt, and none after.
func TestExecutor_cancelDuringBackoff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newExecutor(t, NewConfig().WithRandSource(maxDraw))
		r := newFake("down", func(context.Context, int, host.Step) *abi.StepResult { return retryable() })
		ctx, cancel := context.WithCancelCause(t.Context())
		tk := e.Submit(ctx, Request{Runner: r, Retry: RetryPolicy{MaxAttempts: 5, Initial: 10 * time.Second, MaxInterval: 10 * time.Second}})
		synctest.Wait()
		if r.Calls() != 1 {
			t.Fatalf("%d attempts before the wait, want 1", r.Calls())
		}
		start := time.Now()
		time.Sleep(50 * time.Millisecond)
		cancel(host.ErrCancelled)
		res := tk.Result()
		if took := time.Since(start); took != 50*time.Millisecond {
			t.Errorf("cancelled after %s, want 50ms", took)
		}
		wantStatus(t, res, abi.StatusCancelled, abi.CodeCancelledByUser)
		if res.Attempts != 1 {
			t.Fatalf("attempts %d, want 1", res.Attempts)
		}
		time.Sleep(time.Minute)
		if r.Calls() != 1 {
			t.Fatalf("%d attempts, want 1", r.Calls())
		}
		if s, _ := e.Stats(DefaultPool); s.Backoff != 0 || s.InFlight != 0 {
			t.Fatalf("load left: %+v", s)
		}
	})
}

// Retry-After is honoured, clamped to the maximum interval, in place of
// the jittered wait.
func TestExecutor_retryAfterHonoured(t *testing.T) {
	for _, tc := range []struct {
		name  string
		after time.Duration
		want  time.Duration
	}{{"asked", 1500 * time.Millisecond, 1500 * time.Millisecond}, {"clamped", time.Hour, 5 * time.Second}} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				e := newExecutor(t, NewConfig().WithRandSource(constSource(0)))
				r := newFake("429", func(_ context.Context, n int, _ host.Step) *abi.StepResult {
					if n == 1 {
						res := failure(abi.CodeHTTPError, abi.ClassRetryable)
						res.Error.SetRetryAfter(tc.after)
						return res
					}
					return success()
				})
				res := e.Run(t.Context(), Request{Runner: r, Retry: RetryPolicy{MaxInterval: 5 * time.Second}})
				wantStatus(t, res, abi.StatusSuccess, 0)
				st := r.Starts()
				if w := st[1].Sub(st[0]); w != tc.want {
					t.Fatalf("waited %s, want %s", w, tc.want)
				}
			})
		})
	}
}

// What is never retried: the executor's own list, the policy's list, a
// timeout of the block's own computation, a cancellation.
func TestExecutor_neverRetried(t *testing.T) {
	cases := []struct {
		name   string
		res    func(ctx context.Context) *abi.StepResult
		policy RetryPolicy
		status abi.Status
	}{
		{"permissionDenied", func(context.Context) *abi.StepResult { return failure(abi.CodePermissionDenied, abi.ClassRetryable) }, RetryPolicy{}, abi.StatusError},
		{"quotaExceeded", func(context.Context) *abi.StepResult { return failure(abi.CodeQuotaExceeded, abi.ClassRetryable) }, RetryPolicy{}, abi.StatusError},
		{"policyList", func(context.Context) *abi.StepResult { return failure(abi.CodeHTTPError, abi.ClassRetryable) },
			RetryPolicy{NonRetryable: []abi.Code{abi.CodeHTTPError}}, abi.StatusError},
		{"attemptTimeout", func(ctx context.Context) *abi.StepResult { <-ctx.Done(); return ended(ctx) }, RetryPolicy{}, abi.StatusTimeout},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				e := newExecutor(t, NewConfig())
				r := newFake("x", func(ctx context.Context, _ int, _ host.Step) *abi.StepResult { return tc.res(ctx) })
				res := e.Run(t.Context(), Request{Runner: r, Retry: tc.policy, Step: host.Step{Limits: host.Limits{Timeout: time.Second}}})
				if res.Status != tc.status || res.Attempts != 1 || r.Calls() != 1 {
					t.Fatalf("status %s attempts %d calls %d", res.Status, res.Attempts, r.Calls())
				}
			})
		})
	}
}
