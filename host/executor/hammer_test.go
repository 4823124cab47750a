package executor

import (
	"context"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/blockhost/blockhost/abi"
	"github.com/blockhost/blockhost/host"
)

// Acceptance 11: 10,000 steps from 64 goroutines, in real time under the
// race detector, with random outcomes, cancellations and deadlines. Every
// step gets exactly one result; the pools drain to nothing queued, in
// flight or backing off; the counts by status add up to the steps
// submitted; the capacity invariant holds at every sample; and no
// goroutine is left behind.
func TestExecutor_hammer(t *testing.T) {
	if testing.Short() {
		t.Skip("hammer test")
	}
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())

	const (
		submitters = 64
		steps      = 10_000
	)
	cfg := NewConfig().
		WithPool(DefaultPool, PoolConfig{Concurrency: 8, QueueSize: 256, TenantLimit: 160}).
		WithPool("bulk", PoolConfig{Concurrency: 2, QueueSize: 16, AgingLimit: 5 * time.Millisecond}).
		WithRetryPolicy(RetryPolicy{MaxAttempts: 3, Initial: time.Millisecond, MaxInterval: 3 * time.Millisecond}).
		WithBreaker(BreakerConfig{ConsecutiveFailures: 20, OpenFor: 5 * time.Millisecond}).
		WithAbandonAfter(20 * time.Millisecond)
	e, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	r := newFake("random", func(ctx context.Context, _ int, _ host.Step) *abi.StepResult {
		d := time.Duration(rand.IntN(300)) * time.Microsecond
		select {
		case <-time.After(d):
		case <-ctx.Done():
			return ended(ctx)
		}
		switch rand.IntN(10) {
		case 0, 1, 2:
			return retryable()
		case 3:
			return failure(abi.CodeInvalidInput, abi.ClassPermanent)
		case 4:
			panic("a runner bug")
		}
		return success()
	})

	// Sample the invariant while the hammer runs.
	stop := make(chan struct{})
	var sampler sync.WaitGroup
	var samples atomic.Int64
	sampler.Go(func() {
		for {
			for _, name := range e.Pools() {
				s, _ := e.Stats(name)
				if s.Queued+s.InFlight+s.Backoff > s.Capacity || s.InFlight > s.Concurrency || s.Abandoned > s.InFlight {
					t.Errorf("pool %s broke its invariant: %+v", name, s)
				}
			}
			samples.Add(1)
			select {
			case <-stop:
				return
			case <-time.After(100 * time.Microsecond):
			}
		}
	})

	var (
		mu       sync.Mutex
		byStatus = map[abi.Status]int{}
		results  atomic.Int64
		wg       sync.WaitGroup
	)
	for g := range submitters {
		wg.Go(func() {
			rnd := rand.New(rand.NewPCG(uint64(g), 1))
			var mine []*Ticket
			n := steps / submitters
			if g < steps%submitters {
				n++
			}
			for i := range n {
				req := Request{Runner: r, TenantID: []string{"a", "b", "c"}[rnd.IntN(3)],
					Priority: Priority(rnd.IntN(4)) + PriorityLow, Dependency: []string{"", "x", "y"}[rnd.IntN(3)]}
				if rnd.IntN(4) == 0 {
					req.Pool = "bulk"
				}
				if rnd.IntN(5) == 0 {
					req.TotalDeadline = time.Duration(1+rnd.IntN(5)) * time.Millisecond
				}
				ctx, cancel := context.WithCancel(context.Background())
				tk := e.Submit(ctx, req)
				switch rnd.IntN(6) {
				case 0:
					cancel()
				case 1:
					d := time.Duration(rnd.IntN(500)) * time.Microsecond
					go func() {
						time.Sleep(d)
						tk.Cancel()
					}()
				}
				mine = append(mine, tk)
				if i%16 == 0 {
					time.Sleep(50 * time.Microsecond)
				}
				defer cancel()
			}
			for _, tk := range mine {
				res := tk.Result()
				if !res.Status.Valid() {
					t.Errorf("invalid status %q", res.Status)
				}
				mu.Lock()
				byStatus[res.Status]++
				mu.Unlock()
				results.Add(1)
			}
		})
	}
	wg.Wait()
	close(stop)
	sampler.Wait()

	total := 0
	for _, n := range byStatus {
		total += n
	}
	if total != steps || results.Load() != steps {
		t.Fatalf("%d results by status (%v), want %d", total, byStatus, steps)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := e.Close(ctx); err != nil {
		t.Fatalf("close: %v", err)
	}
	for _, name := range e.Pools() {
		if s, _ := e.Stats(name); s.Queued != 0 || s.InFlight != 0 || s.Backoff != 0 || s.Abandoned != 0 {
			t.Fatalf("pool %s did not drain: %+v", name, s)
		}
	}
	t.Logf("%d steps: %v; %d runner calls; %d invariant samples", steps, byStatus, r.Calls(), samples.Load())
}
