package worker_test

import (
	"context"
	"encoding/json"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/blockhost/blockhost/abi"
	"github.com/blockhost/blockhost/host"
	"github.com/blockhost/blockhost/host/executor"
	"github.com/blockhost/blockhost/host/worker"
	wt "github.com/blockhost/blockhost/host/worker/workertest"
)

// blocks are the test's built-in blocks:
//
//	echo   returns its input
//	sleep  sleeps {"ms": N} milliseconds, or until cancelled
//	fail   fails with network_error, retryable
type testBlocks struct {
	rt *host.Runtime
	mu sync.Mutex
	// runs counts the runs of each assignment (the step id).
	runs map[string]int
}

func newRuntime(t testing.TB) *host.Runtime {
	t.Helper()
	rt, err := host.NewRuntime(context.Background(), host.NewRuntimeConfig())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rt.Close(context.Background()) })
	return rt
}

func catalog(t testing.TB) (worker.Catalog, *testBlocks) {
	t.Helper()
	tb := &testBlocks{rt: newRuntime(t), runs: map[string]int{}}
	count := func(id string) {
		tb.mu.Lock()
		tb.runs[id]++
		tb.mu.Unlock()
	}
	c := worker.Catalog{}.
		With("echo", worker.Block{Runner: tb.rt.Native("echo", func(_ context.Context, call *host.Call) ([]byte, error) {
			count(call.Step.ID)
			return call.Step.Input, nil
		})}).
		With("sleep", worker.Block{Runner: tb.rt.Native("sleep", func(ctx context.Context, call *host.Call) ([]byte, error) {
			count(call.Step.ID)
			var in struct{ MS int }
			_ = json.Unmarshal(call.Step.Input, &in)
			select {
			case <-time.After(time.Duration(in.MS) * time.Millisecond):
				return []byte(`{"slept":true}`), nil
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		})}).
		With("fail", worker.Block{Runner: tb.rt.Native("fail", func(_ context.Context, call *host.Call) ([]byte, error) {
			count(call.Step.ID)
			return nil, abi.NewError(abi.CodeNetworkError, abi.ClassRetryable, "connection refused")
		}), Retry: executor.RetryPolicy{Initial: time.Millisecond, MaxInterval: time.Millisecond}})
	return c, tb
}

func (tb *testBlocks) runsOf(id string) int {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	return tb.runs[id]
}

func newExecutor(t testing.TB, concurrency, queue int) *executor.Executor {
	t.Helper()
	e, err := executor.New(executor.NewConfig().
		WithPool(executor.DefaultPool, executor.PoolConfig{Concurrency: concurrency, QueueSize: queue}).
		WithRetryBudget(executor.BudgetConfig{Disabled: true}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close(context.Background()) })
	return e
}

// startWorker starts a worker on nc, shut down at the end of the test.
func startWorker(t testing.TB, nc *nats.Conn, e *executor.Executor, b worker.Blocks, cfg worker.Config) *worker.Worker {
	t.Helper()
	w, err := worker.New(nc, e, b, cfg.WithFetchWait(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := w.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = w.Shutdown(ctx)
	})
	return w
}

func wtAssignment(id, jobType string) []byte { return wt.Assignment(id, jobType, nil) }
