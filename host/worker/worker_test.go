package worker_test

import (
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/blockhost/blockhost/host/worker"
	wt "github.com/blockhost/blockhost/host/worker/workertest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// One worker, many assignments: each has exactly one result carrying
// every correlation id, and the assignment stream ends empty.
func TestRoundTrip(t *testing.T) {
	s := wt.StartServer(t, "")
	nc := wt.Connect(t, s.ClientURL())
	c, tb := catalog(t)
	startWorker(t, nc, newExecutor(t, 8, 8), c, worker.NewConfig().WithID("w1"))
	js := wt.JetStream(t, nc)
	ids := wt.Publish(t, js, "rt-", 200, "echo", map[string]any{"x": 1})
	got := wt.Results(t, js, len(ids), 30*time.Second)
	for _, id := range ids {
		r, ok := got[id]
		switch {
		case !ok:
			t.Fatalf("no result for %s", id)
		case r.Status != worker.StatusSuccess:
			t.Fatalf("%s: %+v", id, r)
		case r.RequestID != "req-"+id || r.TenantID != "t1" || r.TraceID != "tr-"+id || r.RunID != "run-1" || r.ProviderID != "blockhost" || r.Job != "echo":
			t.Fatalf("%s: correlation ids not carried over: %+v", id, r)
		case string(r.Outputs) != `{"x":1}`:
			t.Fatalf("%s: outputs %s", id, r.Outputs)
		case r.CompletedAt == 0 || r.Version != "1":
			t.Fatalf("%s: %+v", id, r)
		}
		if n := tb.runsOf(id); n != 1 {
			t.Fatalf("%s ran %d times", id, n)
		}
	}
	wt.Eventually(t, 10*time.Second, "assignment stream empty", func() bool { return wt.StreamMsgs(t, js, worker.StreamAssign) == 0 })
}
