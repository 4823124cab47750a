package executor_test

import (
	"context"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/blockhost/blockhost/abi"
	"github.com/blockhost/blockhost/host"
	"github.com/blockhost/blockhost/host/executor"
)

// A built-in block whose dependency fails twice, retried by the executor.
func Example() {
	ctx := context.Background()
	rt, _ := host.NewRuntime(ctx, host.NewRuntimeConfig())
	defer rt.Close(ctx)
	calls := 0
	flaky := rt.Native("inventory.lookup", func(ctx context.Context, call *host.Call) ([]byte, error) {
		if calls++; calls <= 2 {
			return nil, abi.NewError(abi.CodeNetworkError, abi.ClassRetryable, "connection reset")
		}
		return []byte(`{"in_stock":3}`), nil
	})

	e, _ := executor.New(executor.NewConfig().
		WithPool(executor.DefaultPool, executor.PoolConfig{Concurrency: 4, QueueSize: 100}).
		WithRetryPolicy(executor.RetryPolicy{MaxAttempts: 5, Initial: 10 * time.Millisecond}).
		WithRegisterer(prometheus.NewRegistry()))
	defer e.Close(ctx)

	res := e.Run(ctx, executor.Request{
		Runner:     flaky,
		Step:       host.Step{ID: "order-42", Input: []byte(`{"sku":"A1"}`)},
		Dependency: "inventory:443",
		Priority:   executor.PriorityHigh,
	})
	fmt.Println(res.StepID, res.Status, string(res.Output), "attempts:", res.Attempts, "retries:", res.RetriesUsed)
	// Output: order-42 success {"in_stock":3} attempts: 3 retries: 2
}
