package worker_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

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

// subscribe collects the core NATS messages of subject.
func subscribe[T any](t *testing.T, nc *nats.Conn, subject string) func() []T {
	t.Helper()
	var mu sync.Mutex
	var got []T
	sub, err := nc.Subscribe(subject, func(m *nats.Msg) {
		var v T
		if err := json.Unmarshal(m.Data, &v); err != nil {
			t.Errorf("%s: %s: %v", subject, m.Data, err)
			return
		}
		mu.Lock()
		got = append(got, v)
		mu.Unlock()
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	return func() []T {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(got)
	}
}

func publishRaw(t *testing.T, js jetstream.JetStream, subject string, data []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := js.Publish(ctx, subject, data); err != nil {
		t.Fatal(err)
	}
}

// Assignments that can never succeed go to the dead-letter stream with
// their reason, are rejected in their ack, and still get an error
// result; none is run.
func TestDeadLetters(t *testing.T) {
	s := wt.StartServer(t, "")
	nc := wt.Connect(t, s.ClientURL())
	c, tb := catalog(t)
	acks := subscribe[worker.AssignmentAck](t, nc, worker.SubjectAssignAck)
	startWorker(t, nc, newExecutor(t, 4, 0), c, worker.NewConfig().WithID("w1"))
	js := wt.JetStream(t, nc)

	publishRaw(t, js, worker.SubjectAssign, []byte(`{"version":"2","assignment_id":"v2","request_id":"r","tenant_id":"t","job":{"type":"echo"}}`))
	publishRaw(t, js, worker.SubjectAssign, wt.Assignment("unknown", "no.such.block", nil))
	publishRaw(t, js, worker.SubjectAssign, []byte(`{"version":"1","assignment_id":"nojob","request_id":"r","tenant_id":"t"}`))
	publishRaw(t, js, worker.SubjectAssign, []byte("\x00not json"))
	got := wt.Results(t, js, 4, 20*time.Second)

	reasons := map[string]string{"v2": worker.ReasonUnsupportedVersion, "unknown": worker.ReasonUnsupportedJobType,
		"nojob": worker.ReasonMissingJobType, "": worker.ReasonInvalidJSON}
	for id, reason := range reasons {
		r, ok := got[id]
		if !ok {
			t.Fatalf("no result for %q: %v", id, got)
		}
		if r.Status != worker.StatusError || r.Error == nil || !strings.HasPrefix(r.Error.Message, reason+":") {
			t.Fatalf("%q: %+v", id, r)
		}
		if tb.runsOf(id) != 0 {
			t.Fatalf("%q ran", id)
		}
	}
	if n := wt.StreamMsgs(t, js, worker.StreamDLQ); n != 4 {
		t.Fatalf("dead-letter stream holds %d, want 4", n)
	}
	cons, err := js.OrderedConsumer(context.Background(), worker.StreamDLQ, jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	batch, err := cons.Fetch(4, jetstream.FetchMaxWait(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for m := range batch.Messages() {
		var dl worker.DeadLetter
		if err := json.Unmarshal(m.Data(), &dl); err != nil {
			t.Fatal(err)
		}
		if dl.Reason != reasons[dl.AssignmentID] || dl.WorkerID != "w1" || dl.Deliveries != 1 || (dl.Assignment == nil) == (dl.AssignmentBase64 == nil) {
			t.Fatalf("dead letter %+v", dl)
		}
		seen[dl.Reason] = true
	}
	if len(seen) != 4 {
		t.Fatalf("dead-letter reasons %v", seen)
	}
	wt.Eventually(t, 5*time.Second, "4 rejected acks", func() bool {
		n := 0
		for _, a := range acks() {
			if a.Status == worker.AckRejected && a.Reason == reasons[a.AssignmentID] {
				n++
			}
		}
		return n == 4
	})
	wt.Eventually(t, 5*time.Second, "assignment stream empty", func() bool { return wt.StreamMsgs(t, js, worker.StreamAssign) == 0 })
}

// An assignment delivered more than MaxDeliver times (its workers died)
// is dead-lettered instead of run again.
func TestDeadLetters_maxDeliver(t *testing.T) {
	s := wt.StartServer(t, "")
	nc := wt.Connect(t, s.ClientURL())
	js := wt.JetStream(t, nc)
	ctx := context.Background()
	cons, err := worker.EnsureStreams(ctx, js, worker.Streams{})
	if err != nil {
		t.Fatal(err)
	}
	publishRaw(t, js, worker.SubjectAssign, wt.Assignment("poison", "echo", nil))
	// A worker that takes it and dies: here, a fetch handed back twice.
	for range 2 {
		b, err := cons.Fetch(1, jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		for m := range b.Messages() {
			_ = m.Nak()
		}
	}
	c, tb := catalog(t)
	startWorker(t, nc, newExecutor(t, 2, 0), c, worker.NewConfig().WithMaxDeliver(2))
	r := wt.Results(t, js, 1, 20*time.Second)["poison"]
	if r.Status != worker.StatusError || r.Error == nil || r.Error.Code != "execution_failed" || !strings.HasPrefix(r.Error.Message, worker.ReasonMaxDeliver) {
		t.Fatalf("got %+v", r)
	}
	if tb.runsOf("poison") != 0 {
		t.Fatal("a poison message ran")
	}
	if n := wt.StreamMsgs(t, js, worker.StreamDLQ); n != 1 {
		t.Fatalf("dead-letter stream holds %d", n)
	}
}

// A result published twice for one assignment is dropped by the results
// stream: the router sent the assignment again under another message id,
// the worker ran it twice, one result remains.
func TestResults_duplicateDropped(t *testing.T) {
	s := wt.StartServer(t, "")
	nc := wt.Connect(t, s.ClientURL())
	c, tb := catalog(t)
	reg := prometheus.NewRegistry()
	startWorker(t, nc, newExecutor(t, 1, 0), c, worker.NewConfig().WithRegisterer(reg))
	js := wt.JetStream(t, nc)
	ctx := context.Background()
	for _, msgID := range []string{"first", "second"} {
		if _, err := js.Publish(ctx, worker.SubjectAssign, wt.Assignment("twice", "echo", nil), jetstream.WithMsgID(msgID)); err != nil {
			t.Fatal(err)
		}
		wt.Eventually(t, 10*time.Second, "run", func() bool { return wt.StreamMsgs(t, js, worker.StreamAssign) == 0 })
	}
	wt.Eventually(t, 10*time.Second, "ran twice", func() bool { return tb.runsOf("twice") == 2 })
	wt.Eventually(t, 10*time.Second, "duplicate counted", func() bool {
		return counter(t, reg, "blockhost_worker_results_duplicate_total") == 1
	})
	if n := wt.StreamMsgs(t, js, worker.StreamResult); n != 1 {
		t.Fatalf("results stream holds %d results for one assignment", n)
	}
}

func counter(t *testing.T, g prometheus.Gatherer, name string) float64 {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	sum := 0.0
	for _, mf := range mfs {
		if mf.GetName() == name {
			for _, m := range mf.GetMetric() {
				sum += m.GetCounter().GetValue() + m.GetGauge().GetValue()
			}
		}
	}
	return sum
}

// A cancel over the wire ends a running step and one still waiting in
// the stream; both results say cancelled.
func TestCancelOverTheWire(t *testing.T) {
	s := wt.StartServer(t, "")
	nc := wt.Connect(t, s.ClientURL())
	c, tb := catalog(t)
	acks := subscribe[worker.AssignmentAck](t, nc, worker.SubjectAssignAck)
	raw := subscribe[json.RawMessage](t, nc, worker.SubjectResult)
	startWorker(t, nc, newExecutor(t, 1, 0), c, worker.NewConfig())
	js := wt.JetStream(t, nc)
	publishRaw(t, js, worker.SubjectAssign, wt.Assignment("running", "sleep", map[string]any{"ms": 60000}))
	wt.Eventually(t, 10*time.Second, "running accepted", func() bool { return len(acks()) == 1 && tb.runsOf("running") == 1 })
	// The worker's one slot is taken: "queued" waits in the stream.
	publishRaw(t, js, worker.SubjectAssign, wt.Assignment("queued", "sleep", map[string]any{"ms": 60000}))
	publishRaw(t, js, worker.SubjectCancel, []byte(`{"assignment_id":"queued"}`))
	publishRaw(t, js, worker.SubjectCancel, []byte(`{"assignment_id":"running"}`))
	got := wt.Results(t, js, 2, 20*time.Second)
	for _, id := range []string{"running", "queued"} {
		if r := got[id]; r.Status != worker.StatusCancelled || r.ErrorCode != "CANCELLED_BY_USER" {
			t.Fatalf("%s: %+v", id, r)
		}
	}
	if tb.runsOf("queued") != 0 {
		t.Fatal("a step cancelled before it was fetched ran")
	}
	// The wire spells it "cancelled", never "canceled".
	wt.Eventually(t, 5*time.Second, "2 raw results", func() bool { return len(raw()) == 2 })
	for _, r := range raw() {
		if !strings.Contains(string(r), `"status":"cancelled"`) {
			t.Fatalf("result on the wire: %s", r)
		}
	}
}

// Heartbeats carry the worker's id, capacity and pools; /_health says
// healthy until the worker drains; /metrics has the worker's counters.
func TestHeartbeatsAndHealth(t *testing.T) {
	s := wt.StartServer(t, "")
	nc := wt.Connect(t, s.ClientURL())
	c, _ := catalog(t)
	beats := subscribe[worker.Heartbeat](t, nc, worker.SubjectHeartbeat)
	reg := prometheus.NewRegistry()
	w := startWorker(t, nc, newExecutor(t, 3, 1), c, worker.NewConfig().WithID("hb").WithVersion("v9").
		WithHeartbeat(50*time.Millisecond).WithRegisterer(reg))
	wt.Eventually(t, 10*time.Second, "3 heartbeats", func() bool { return len(beats()) >= 3 })
	hb := beats()[1]
	if hb.WorkerID != "hb" || hb.Version != "v9" || hb.Status != "ready" || hb.Capacity != 4 || len(hb.Pools) != 1 ||
		hb.Pools[0].Name != "default" || hb.Pools[0].Capacity != 4 || hb.Timestamp == 0 {
		t.Fatalf("heartbeat %+v", hb)
	}
	srv := httptest.NewServer(w.Handler(reg))
	defer srv.Close()
	get := func(path string) (int, string) {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	code, body := get("/_health")
	var h worker.Health
	if err := json.Unmarshal([]byte(body), &h); err != nil || code != 200 || h.Status != "healthy" || h.Timestamp == "" {
		t.Fatalf("health %d %s", code, body)
	}
	if code, body := get("/metrics"); code != 200 || !strings.Contains(body, "blockhost_worker_heartbeat_age_seconds") ||
		!strings.Contains(body, "blockhost_worker_fetched_total") {
		t.Fatalf("metrics %d %s", code, body)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := w.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if code, body := get("/_health"); code != 503 || !strings.Contains(body, `"draining"`) {
		t.Fatalf("health while drained %d %s", code, body)
	}
}

// A full worker leaves assignments in the stream; they are taken later,
// by it or by a worker with room, and none is refused.
func TestOverload_messagesStayInStream(t *testing.T) {
	s := wt.StartServer(t, "")
	nc := wt.Connect(t, s.ClientURL())
	c, tb := catalog(t)
	js := wt.JetStream(t, nc)
	w1 := startWorker(t, nc, newExecutor(t, 2, 0), c, worker.NewConfig().WithID("small").WithHeartbeat(20*time.Millisecond))
	ids := wt.Publish(t, js, "ov-", 12, "sleep", map[string]any{"ms": 300})
	wt.Eventually(t, 10*time.Second, "two running", func() bool { return w1.Heartbeat().InFlight == 2 })
	ctx := context.Background()
	st, err := js.Stream(ctx, worker.StreamAssign)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs < 10 {
		t.Fatalf("stream holds %d while the worker is full; want at least 10 waiting", info.State.Msgs)
	}
	if hb := w1.Heartbeat(); hb.InFlight > 2 || hb.Pools[0].InFlight+hb.Pools[0].QueueDepth > 2 {
		t.Fatalf("worker holds more than its slots: %+v", hb)
	}
	// A second worker with room takes its share.
	startWorker(t, nc, newExecutor(t, 4, 0), c, worker.NewConfig().WithID("big"))
	got := wt.Results(t, js, len(ids), 30*time.Second)
	workers := map[string]int{}
	for _, id := range ids {
		r := got[id]
		if r.Status != worker.StatusSuccess {
			t.Fatalf("%s: %+v", id, r)
		}
		workers[r.Metadata["worker_id"]]++
		if tb.runsOf(id) != 1 {
			t.Fatalf("%s ran %d times", id, tb.runsOf(id))
		}
	}
	if workers["small"] == 0 || workers["big"] == 0 {
		t.Fatalf("results by worker %v", workers)
	}
}

// A step that runs longer than the ack wait is kept alive with
// in-progress signals: it is not delivered again, and runs once.
func TestInProgress_longStepNotRedelivered(t *testing.T) {
	s := wt.StartServer(t, "")
	nc := wt.Connect(t, s.ClientURL())
	c, tb := catalog(t)
	js := wt.JetStream(t, nc)
	reg := prometheus.NewRegistry()
	startWorker(t, nc, newExecutor(t, 2, 0), c, worker.NewConfig().WithRegisterer(reg).
		WithStreams(worker.Streams{AckWait: 500 * time.Millisecond}))
	wt.Publish(t, js, "long-", 1, "sleep", map[string]any{"ms": 2000})
	r := wt.Results(t, js, 1, 20*time.Second)["long-0"]
	if r.Status != worker.StatusSuccess || tb.runsOf("long-0") != 1 {
		t.Fatalf("ran %d times: %+v", tb.runsOf("long-0"), r)
	}
	if n := counter(t, reg, "blockhost_worker_redelivered_total"); n != 0 {
		t.Fatalf("%v redeliveries", n)
	}
}
