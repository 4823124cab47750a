package host_test

import (
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
