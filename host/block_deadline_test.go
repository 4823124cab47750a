package host_test

import (
	"context"
	"testing"
	"time"

	"github.com/blockhost/blockhost/abi"
	"github.com/blockhost/blockhost/host"
)

// TestBlock_returnAfterDeadlineIsTimeout: a guest whose deadline passes
// while it runs code the engine cannot interrupt (bulk memory.fill), and
// which then returns normally, ends as timeout — the step is over when its context
// ended, however the guest finished (issue 10: removing that check in
// block.go once survived the suite).
func TestBlock_returnAfterDeadlineIsTimeout(t *testing.T) {
	forEachEngine(t, func(t *testing.T, rt *host.Runtime) {
		b := load(t, rt, "fillreturn")
		start := time.Now()
		res := b.Run(t.Context(), host.Step{Limits: host.Limits{Timeout: time.Millisecond, Memory: 128 << 20}})
		t.Logf("returned after %s", time.Since(start))
		if res.Status != abi.StatusTimeout || res.Error == nil || res.Error.Code != abi.CodeCancelledByTimeout {
			t.Fatalf("status %s error %+v, want timeout", res.Status, res.Error)
		}
	})
}

// lateTimer is a context whose deadline has passed but whose timer has not
// fired yet: Err is nil. It stands for the moment after a deadline when an
// I/O deadline set to the same instant has already cut a host call and the
// guest returned, but the context's own timer has not run.
type lateTimer struct{ context.Context }

func (lateTimer) Deadline() (time.Time, bool) { return time.Now().Add(-time.Millisecond), true }

// TestBlock_deadlinePassedBeforeItsTimer: a step that finishes after its
// deadline is timeout even when the context's timer has not fired yet, for
// a WebAssembly block and a built-in block alike.
func TestBlock_deadlinePassedBeforeItsTimer(t *testing.T) {
	ctx := lateTimer{context.Background()}
	forEachEngine(t, func(t *testing.T, rt *host.Runtime) {
		res := load(t, rt, "echo").Run(ctx, host.Step{Input: []byte(`{}`)})
		if res.Status != abi.StatusTimeout || res.Error == nil || res.Error.Code != abi.CodeCancelledByTimeout {
			t.Fatalf("wasm block: status %s error %+v, want timeout", res.Status, res.Error)
		}
		nb := rt.Native("late", func(context.Context, *host.Call) ([]byte, error) { return []byte(`{}`), nil })
		if res := nb.Run(ctx, host.Step{}); res.Status != abi.StatusTimeout {
			t.Fatalf("built-in block: status %s error %+v, want timeout", res.Status, res.Error)
		}
	})
}
