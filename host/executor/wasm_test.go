package executor_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/blockhost/blockhost/abi"
	"github.com/blockhost/blockhost/host"
	"github.com/blockhost/blockhost/host/executor"
	"github.com/blockhost/blockhost/internal/testwasm"
)

func loadBlock(t *testing.T, rt *host.Runtime, fixture string) *host.Block {
	t.Helper()
	b, err := rt.Load(t.Context(), fixture, testwasm.WAT(t, filepath.Join("..", "testdata", fixture+".wat")))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// The executor runs real WebAssembly blocks: a block's retryable error is
// retried, and a cancellation reaches a guest spinning in a loop.
func TestExecutor_wasmBlocks(t *testing.T) {
	rt, err := host.NewRuntime(t.Context(), host.NewRuntimeConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close(context.Background())
	e, err := executor.New(executor.NewConfig().WithRetryPolicy(executor.RetryPolicy{Initial: time.Millisecond, MaxInterval: 5 * time.Millisecond}))
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close(context.Background())

	res := e.Run(t.Context(), executor.Request{Runner: loadBlock(t, rt, "errorset"), Retry: executor.RetryPolicy{MaxAttempts: 3}})
	if res.Status != abi.StatusError || res.Error.Code != abi.CodeResourceUnavailable || res.Attempts != 3 || res.RetriesUsed != 2 {
		t.Fatalf("errorset: %+v %+v", res, res.Error)
	}

	tk := e.Submit(t.Context(), executor.Request{Runner: loadBlock(t, rt, "loop")})
	time.Sleep(100 * time.Millisecond)
	start := time.Now()
	tk.Cancel()
	res = tk.Result()
	if res.Status != abi.StatusCancelled || res.Attempts != 1 {
		t.Fatalf("loop: %+v %+v", res, res.Error)
	}
	if took := time.Since(start); took > time.Second {
		t.Fatalf("cancellation took %s", took)
	}

	res = e.Run(t.Context(), executor.Request{Runner: loadBlock(t, rt, "loop"), Step: host.Step{Limits: host.Limits{Timeout: 100 * time.Millisecond}}})
	if res.Status != abi.StatusTimeout || res.Attempts != 1 {
		t.Fatalf("loop timeout: %+v %+v", res, res.Error)
	}
}
