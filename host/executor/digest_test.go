package executor

import (
	"context"
	"testing"
	"testing/synctest"
	"time"

	"github.com/blockhost/blockhost/abi"
	"github.com/blockhost/blockhost/host"
)

// digestRunner is a runner with a module digest, as *host.Block has, whose
// results never carry it: whatever digest a result shows, the executor
// put there.
type digestRunner struct{ runnerFunc }

const testDigest = "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"

func (digestRunner) Digest() string { return testDigest }

// Results the executor makes itself — a runner's panic, an abandoned
// attempt, the total deadline passing between attempts — carry the
// runner's module digest, as the runner's own results do.
func TestExecutor_resultsCarryTheModuleDigest(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newExecutor(t, NewConfig().WithAbandonAfter(100*time.Millisecond))
		check := func(name string, res *abi.StepResult, status abi.Status) {
			t.Helper()
			if res.Status != status || res.Module != testDigest {
				t.Errorf("%s: status %s module %q, want %s and %s", name, res.Status, res.Module, status, testDigest)
			}
		}

		panics := digestRunner{func(context.Context, host.Step) *abi.StepResult { panic("boom") }}
		check("panic", e.Run(t.Context(), Request{Runner: panics, Retry: RetryPolicy{MaxAttempts: 1}}), abi.StatusError)

		stuck := make(chan struct{})
		stubborn := digestRunner{func(context.Context, host.Step) *abi.StepResult { <-stuck; return success() }}
		tk := e.Submit(t.Context(), Request{Runner: stubborn})
		time.Sleep(time.Second)
		tk.Cancel()
		check("abandoned", tk.Result(), abi.StatusCancelled)
		close(stuck)

		failing := digestRunner{func(context.Context, host.Step) *abi.StepResult { return retryable() }}
		check("total deadline", e.Run(t.Context(), Request{Runner: failing, TotalDeadline: 500 * time.Millisecond,
			Retry: RetryPolicy{MaxAttempts: 5, Initial: time.Second, MaxInterval: time.Second, Multiplier: 1}}), abi.StatusTimeout)
		synctest.Wait()
	})
}
