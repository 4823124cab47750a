package executor

import (
	"context"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/blockhost/blockhost/abi"
	"github.com/blockhost/blockhost/host"
)

// Acceptance 6: queue size 2, concurrency 1, the running step blocked:
// of 4 submits, 1 runs, 2 queue and the 4th is refused at once with
// system_overload; the metrics say queue depth 2 and 1 rejection.
func TestExecutor_boundedQueueRejects(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		reg := prometheus.NewRegistry()
		e := newExecutor(t, NewConfig().WithRegisterer(reg).WithPool(DefaultPool, PoolConfig{Concurrency: 1, QueueSize: 2}))
		release := make(chan struct{})
		r := newFake("busy", blockUntil(release, success))
		var tickets []*Ticket
		for range 3 {
			tickets = append(tickets, e.Submit(t.Context(), Request{Runner: r}))
		}
		synctest.Wait()
		start := time.Now()
		fourth := e.Submit(t.Context(), Request{Runner: r})
		select {
		case <-fourth.Done():
		default:
			t.Fatal("the 4th submit is not refused at once")
		}
		res := fourth.Result()
		wantStatus(t, res, abi.StatusError, abi.CodeSystemOverload)
		if res.Error.Class != abi.ClassRetryable || res.Error.RetryAfterMS == nil || res.Attempts != 0 || time.Since(start) != 0 {
			t.Fatalf("refusal %+v", res.Error)
		}
		s, _ := e.Stats(DefaultPool)
		if s.InFlight != 1 || s.Queued != 2 || s.Capacity != 3 {
			t.Fatalf("stats %+v, want 1 running and 2 queued", s)
		}
		if r.Calls() != 1 {
			t.Fatalf("%d running", r.Calls())
		}
		if d := metricValue(t, reg, "blockhost_executor_queue_depth", map[string]string{"pool": DefaultPool}); d != 2 {
			t.Errorf("queue depth metric %v, want 2", d)
		}
		if n := metricValue(t, reg, "blockhost_executor_rejections_total", map[string]string{"pool": DefaultPool}); n != 1 {
			t.Errorf("rejections metric %v, want 1", n)
		}
		close(release)
		for _, tk := range tickets {
			wantStatus(t, tk.Result(), abi.StatusSuccess, 0)
		}
	})
}

// When full, lower-priority queued work that has not started is refused
// first, to make room for higher-priority work.
func TestExecutor_evictsLowestPriorityFirst(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newExecutor(t, NewConfig().WithPool(DefaultPool, PoolConfig{Concurrency: 1, QueueSize: 2}))
		release := make(chan struct{})
		r := newFake("busy", blockUntil(release, success))
		running := e.Submit(t.Context(), Request{Runner: r})
		low1 := e.Submit(t.Context(), Request{Runner: r, Priority: PriorityLow})
		low2 := e.Submit(t.Context(), Request{Runner: r, Priority: PriorityLow})
		high := e.Submit(t.Context(), Request{Runner: r, Priority: PriorityHigh})
		// The newest low step made room; an equal-priority newcomer is
		// refused instead of evicting.
		res := low2.Result()
		wantStatus(t, res, abi.StatusError, abi.CodeSystemOverload)
		another := e.Submit(t.Context(), Request{Runner: r, Priority: PriorityLow})
		wantStatus(t, another.Result(), abi.StatusError, abi.CodeSystemOverload)
		close(release)
		for _, tk := range []*Ticket{running, low1, high} {
			wantStatus(t, tk.Result(), abi.StatusSuccess, 0)
		}
	})
}

// Acceptance 7: with the worker busy, 10 low then 1 high: the high one
// runs next; a low step past the aging limit runs before a newer high
// one.
func TestExecutor_priorityAndAging(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newExecutor(t, NewConfig().WithPool(DefaultPool, PoolConfig{Concurrency: 1, QueueSize: 20, AgingLimit: 10 * time.Second}))
		var (
			mu    sync.Mutex
			order []string
			gates = map[string]chan struct{}{}
		)
		gate := func(id string) chan struct{} {
			mu.Lock()
			defer mu.Unlock()
			if gates[id] == nil {
				gates[id] = make(chan struct{})
			}
			return gates[id]
		}
		r := newFake("ordered", func(ctx context.Context, _ int, step host.Step) *abi.StepResult {
			mu.Lock()
			order = append(order, step.ID)
			mu.Unlock()
			<-gate(step.ID)
			return success()
		})
		submit := func(id string, p Priority) *Ticket {
			return e.Submit(t.Context(), Request{Runner: r, Step: host.Step{ID: id}, Priority: p})
		}
		first := submit("first", PriorityNormal)
		synctest.Wait()
		var lows []*Ticket
		for i := range 10 {
			lows = append(lows, submit("low"+string(rune('0'+i)), PriorityLow))
		}
		high := submit("high", PriorityHigh)
		close(gate("first"))
		first.Result()
		synctest.Wait()
		// The high step is running now. Let the low ones age past the
		// limit, then submit a newer high step.
		time.Sleep(11 * time.Second)
		high2 := submit("high2", PriorityHigh)
		close(gate("high"))
		high.Result()
		synctest.Wait()
		close(gate("low0"))
		lows[0].Result()
		synctest.Wait()
		mu.Lock()
		got := append([]string(nil), order...)
		mu.Unlock()
		want := []string{"first", "high", "low0", "low1"}
		for i, w := range want {
			if i >= len(got) || got[i] != w {
				t.Fatalf("order %v, want it to start with %v", got, want)
			}
		}
		// Unblock the rest.
		for i := 1; i < 10; i++ {
			close(gate("low" + string(rune('0'+i))))
		}
		close(gate("high2"))
		high2.Result()
		for _, tk := range lows {
			tk.Result()
		}
	})
}

// A tenant may hold at most TenantLimit steps of a pool; other tenants
// are unaffected.
func TestExecutor_tenantLimit(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newExecutor(t, NewConfig().WithPool(DefaultPool, PoolConfig{Concurrency: 2, QueueSize: 8, TenantLimit: 3}))
		release := make(chan struct{})
		r := newFake("busy", blockUntil(release, success))
		var ok []*Ticket
		for range 3 {
			ok = append(ok, e.Submit(t.Context(), Request{Runner: r, TenantID: "greedy"}))
		}
		refused := e.Submit(t.Context(), Request{Runner: r, TenantID: "greedy"})
		wantStatus(t, refused.Result(), abi.StatusError, abi.CodeSystemOverload)
		other := e.Submit(t.Context(), Request{Runner: r, TenantID: "polite"})
		close(release)
		for _, tk := range append(ok, other) {
			wantStatus(t, tk.Result(), abi.StatusSuccess, 0)
		}
	})
}

// A step that waits its queue timeout ends as timeout, never started.
func TestExecutor_queueTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newExecutor(t, NewConfig().WithPool(DefaultPool, PoolConfig{Concurrency: 1, QueueSize: 1}))
		release := make(chan struct{})
		r := newFake("busy", blockUntil(release, success))
		running := e.Submit(t.Context(), Request{Runner: r})
		start := time.Now()
		queued := e.Submit(t.Context(), Request{Runner: r, QueueTimeout: 3 * time.Second})
		res := queued.Result()
		wantStatus(t, res, abi.StatusTimeout, abi.CodeCancelledByTimeout)
		if res.Attempts != 0 || time.Since(start) != 3*time.Second {
			t.Fatalf("attempts %d after %s", res.Attempts, time.Since(start))
		}
		if s, _ := e.Stats(DefaultPool); s.Queued != 0 {
			t.Fatalf("still queued: %+v", s)
		}
		close(release)
		running.Result()
	})
}

// Cancellation at every point: queued, running (in a host call), and the
// cause decides cancelled against timeout.
func TestExecutor_cancelEverywhere(t *testing.T) {
	t.Run("queued", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			e := newExecutor(t, NewConfig().WithPool(DefaultPool, PoolConfig{Concurrency: 1, QueueSize: 1}))
			release := make(chan struct{})
			r := newFake("busy", blockUntil(release, success))
			running := e.Submit(t.Context(), Request{Runner: r})
			queued := e.Submit(t.Context(), Request{Runner: r})
			synctest.Wait()
			queued.Cancel()
			res := queued.Result()
			wantStatus(t, res, abi.StatusCancelled, abi.CodeCancelledByUser)
			if res.Attempts != 0 {
				t.Fatalf("attempts %d", res.Attempts)
			}
			close(release)
			running.Result()
			if r.Calls() != 1 {
				t.Fatalf("the cancelled step ran")
			}
		})
	})
	t.Run("inHostCall", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			e := newExecutor(t, NewConfig())
			r := newFake("hostcall", blockUntil(nil, nil))
			ctx, cancel := context.WithCancelCause(t.Context())
			tk := e.Submit(ctx, Request{Runner: r})
			time.Sleep(20 * time.Millisecond)
			cancel(host.ErrCancelled)
			res := tk.Result()
			wantStatus(t, res, abi.StatusCancelled, abi.CodeCancelledByUser)
			if res.Attempts != 1 {
				t.Fatalf("attempts %d", res.Attempts)
			}
		})
	})
	t.Run("cancelledWinsOverTimeout", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			e := newExecutor(t, NewConfig())
			r := newFake("hostcall", func(ctx context.Context, _ int, _ host.Step) *abi.StepResult {
				<-ctx.Done()
				// The block takes a while to notice: by then the total
				// deadline has passed too.
				time.Sleep(2 * time.Second)
				return ended(ctx)
			})
			tk := e.Submit(t.Context(), Request{Runner: r, TotalDeadline: time.Second})
			time.Sleep(999 * time.Millisecond)
			tk.Cancel()
			wantStatus(t, tk.Result(), abi.StatusCancelled, abi.CodeCancelledByUser)
		})
	})
	t.Run("beforeSubmit", func(t *testing.T) {
		e := newExecutor(t, NewConfig())
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		r := newFake("never", func(context.Context, int, host.Step) *abi.StepResult { return success() })
		wantStatus(t, e.Run(ctx, Request{Runner: r}), abi.StatusCancelled, abi.CodeCancelledByUser)
		if r.Calls() != 0 {
			t.Fatal("ran")
		}
	})
}

// An attempt that ignores cancellation is abandoned after the grace: the
// result comes promptly, and the attempt keeps its worker until it
// returns.
func TestExecutor_abandonsStuckAttempt(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		reg := prometheus.NewRegistry()
		e := newExecutor(t, NewConfig().WithRegisterer(reg).WithAbandonAfter(100*time.Millisecond).
			WithPool(DefaultPool, PoolConfig{Concurrency: 1, QueueSize: 1}))
		stuck := make(chan struct{})
		r := newFake("stubborn", func(context.Context, int, host.Step) *abi.StepResult {
			<-stuck // ignores ctx
			return success()
		})
		tk := e.Submit(t.Context(), Request{Runner: r})
		time.Sleep(time.Second)
		start := time.Now()
		tk.Cancel()
		res := tk.Result()
		if time.Since(start) != 100*time.Millisecond {
			t.Errorf("result after %s, want the 100ms grace", time.Since(start))
		}
		wantStatus(t, res, abi.StatusCancelled, abi.CodeCancelledByUser)
		s, _ := e.Stats(DefaultPool)
		if s.Abandoned != 1 || s.InFlight != 1 {
			t.Fatalf("stats %+v, want the abandoned attempt in flight", s)
		}
		if v := metricValue(t, reg, "blockhost_executor_abandoned_in_flight", nil); v != 1 {
			t.Fatalf("abandoned gauge %v", v)
		}
		close(stuck)
		synctest.Wait()
		if s, _ := e.Stats(DefaultPool); s.Abandoned != 0 || s.InFlight != 0 {
			t.Fatalf("stats after return %+v", s)
		}
	})
}

// A second Submit with the same idempotency key while the first is
// unfinished gets the first step's ticket.
func TestExecutor_idempotencyKey(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newExecutor(t, NewConfig())
		release := make(chan struct{})
		r := newFake("once", blockUntil(release, success))
		a := e.Submit(t.Context(), Request{Runner: r, IdempotencyKey: "k"})
		b := e.Submit(t.Context(), Request{Runner: r, IdempotencyKey: "k"})
		if a != b {
			t.Fatal("different tickets for one key")
		}
		close(release)
		a.Result()
		c := e.Submit(t.Context(), Request{Runner: r, IdempotencyKey: "k"})
		c.Result()
		if r.Calls() != 2 {
			t.Fatalf("%d runs, want 2 (one while in flight, one after)", r.Calls())
		}
	})
}

func TestExecutor_invalidAndClosed(t *testing.T) {
	e, err := New(NewConfig())
	if err != nil {
		t.Fatal(err)
	}
	r := newFake("x", func(context.Context, int, host.Step) *abi.StepResult { return success() })
	wantStatus(t, e.Run(t.Context(), Request{}), abi.StatusError, abi.CodeInvalidInput)
	wantStatus(t, e.Run(t.Context(), Request{Runner: r, Pool: "nope"}), abi.StatusError, abi.CodeInvalidInput)
	wantStatus(t, e.Run(t.Context(), Request{Runner: r, Priority: 9}), abi.StatusError, abi.CodeInvalidInput)
	if err := e.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	wantStatus(t, e.Run(t.Context(), Request{Runner: r}), abi.StatusError, abi.CodeResourceUnavailable)
}

func TestNew_invalidConfig(t *testing.T) {
	for _, cfg := range []Config{
		NewConfig().WithPool("x", PoolConfig{Concurrency: 0}),
		NewConfig().WithPool("x", PoolConfig{Concurrency: 1, QueueSize: -1}),
		NewConfig().WithRetryPolicy(RetryPolicy{Multiplier: 0.5}),
		NewConfig().WithRetryPolicy(RetryPolicy{Initial: time.Minute, MaxInterval: time.Second}),
		NewConfig().WithBreaker(BreakerConfig{FailureRatio: 2}),
	} {
		if _, err := New(cfg); err == nil {
			t.Errorf("config accepted")
		} else if ce := (*ConfigError)(nil); !errorsAs(err, &ce) {
			t.Errorf("error %v is not a ConfigError", err)
		}
	}
}

// Config values are immutable: With returns a copy.
func TestConfig_immutable(t *testing.T) {
	base := NewConfig()
	_ = base.WithPool("extra", PoolConfig{Concurrency: 1})
	if _, ok := base.pools["extra"]; ok {
		t.Fatal("WithPool changed its receiver")
	}
}

// Metrics go only to the registerer given; two executors can use two
// registries, and registering twice on one fails.
func TestExecutor_metricsRegistry(t *testing.T) {
	reg := prometheus.NewRegistry()
	if _, err := New(NewConfig().WithRegisterer(reg)); err != nil {
		t.Fatal(err)
	}
	if _, err := New(NewConfig().WithRegisterer(reg)); err == nil {
		t.Fatal("second registration on one registry succeeded")
	}
	if _, err := New(NewConfig().WithRegisterer(prometheus.NewRegistry())); err != nil {
		t.Fatal(err)
	}
}
