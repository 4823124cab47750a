package worker_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/blockhost/blockhost/host/executor"
	"github.com/blockhost/blockhost/host/job"
	"github.com/blockhost/blockhost/host/worker"
	wt "github.com/blockhost/blockhost/host/worker/workertest"
	"github.com/blockhost/blockhost/internal/testwasm"
)

func newService(t *testing.T, s job.Settings) *job.Service {
	t.Helper()
	svc, err := job.New(job.NewConfig().WithOverrides(s).WithPool(executor.PoolConfig{Concurrency: 4, QueueSize: 4}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { svc.Close(context.Background()) })
	return svc
}

// Through host/job, an assignment becomes the same request run and batch
// build: the job's fields are the input, its ids are carried, and the
// operator's overrides win over the assignment's options.
func TestJobBlocks(t *testing.T) {
	tiny := testwasm.WATFile(t, "testdata/tiny.wat")
	svc := newService(t, job.Settings{Retry: executor.RetryPolicy{MaxAttempts: 1}})
	blocks, err := worker.NewJobBlocks(context.Background(), svc, map[string]job.Request{"tiny": {Block: tiny}})
	if err != nil {
		t.Fatal(err)
	}
	a, err := worker.DecodeAssignment([]byte(`{"version":"1","assignment_id":"a1","request_id":"r","tenant_id":"t","trace_id":"tr",` +
		`"job":{"type":"tiny","x":1,"timeout_ms":1500},"options":{"retry":{"max_attempts":5},"deadline_ms":60000,"priority":"high"}}`))
	if err != nil {
		t.Fatal(err)
	}
	st, err := blocks.Step(a)
	if err != nil {
		t.Fatal(err)
	}
	r := st.Request
	switch {
	case r.Step.ID != "a1" || r.TenantID != "t" || r.TraceID != "tr" || r.IdempotencyKey != "a1":
		t.Fatalf("ids: %+v", r)
	case string(r.Step.Input) != `{"timeout_ms":1500,"x":1}`:
		t.Fatalf("input %s", r.Step.Input)
	case r.Retry.MaxAttempts != 1:
		t.Fatalf("the operator's max attempts lost to the assignment's: %d", r.Retry.MaxAttempts)
	case r.Step.Limits.Timeout != 1500*time.Millisecond || r.TotalDeadline != time.Minute || r.Priority != executor.PriorityHigh:
		t.Fatalf("options not applied: %+v", r)
	}
	a.Job.Type = "nope"
	if _, err := blocks.Step(a); !errors.Is(err, worker.ErrUnsupportedJobType) {
		t.Fatalf("got %v", err)
	}
	// A block that cannot be loaded is an error at start.
	if _, err := worker.NewJobBlocks(context.Background(), svc, map[string]job.Request{"x": {Block: "/no/such.wasm"}}); !errors.Is(err, job.ErrLoad) {
		t.Fatalf("got %v", err)
	}

	// End to end.
	s := wt.StartServer(t, "")
	nc := wt.Connect(t, s.ClientURL())
	startWorker(t, nc, svc.Executor(), blocks, worker.NewConfig())
	js := wt.JetStream(t, nc)
	wt.Publish(t, js, "j-", 20, "tiny", nil)
	for id, res := range wt.Results(t, js, 20, 30*time.Second) {
		if res.Status != worker.StatusSuccess || string(res.Outputs) != `{"ok":true}` {
			t.Fatalf("%s: %+v", id, res)
		}
	}
}
