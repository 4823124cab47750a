package worker_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/blockhost/blockhost/abi"
	"github.com/blockhost/blockhost/host"
	"github.com/blockhost/blockhost/host/worker"
	wt "github.com/blockhost/blockhost/host/worker/workertest"
	"github.com/blockhost/blockhost/plugins/approval"
)

// approvalCatalog is the test catalog with human.approval added.
func approvalCatalog(t *testing.T) worker.Catalog {
	t.Helper()
	c, tb := catalog(t)
	b, ok := worker.Builtin(tb.rt, approval.Name, host.Grants{})
	if !ok {
		t.Fatal("human.approval is not a built-in")
	}
	return c.With(approval.Name, b)
}

func approvalFields(timeoutMS int, approvers ...string) map[string]any {
	return map[string]any{"prompt": "Deploy build 142?", "timeout_ms": timeoutMS, "approvers": approvers}
}

// parkApprovals publishes human.approval assignments and waits until a
// worker has parked each.
func parkApprovals(t *testing.T, nc *nats.Conn, js jetstream.JetStream, prefix string, n int, fields map[string]any) []string {
	t.Helper()
	requested := subscribe[worker.ApprovalRequest](t, nc, worker.SubjectApprovalRequested)
	ids := wt.Publish(t, js, prefix, n, approval.Name, fields)
	wt.Eventually(t, 20*time.Second, "approvals parked", func() bool { return len(requested()) >= n })
	for _, r := range requested() {
		if r.Subject != worker.DecideSubject(r.ApprovalID) || r.Prompt != "Deploy build 142?" || r.TenantID != "t1" {
			t.Fatalf("approval request: %+v", r)
		}
	}
	return ids
}

func decide(t *testing.T, nc *nats.Conn, id string, body any) worker.DecisionReply {
	t.Helper()
	b, _ := json.Marshal(body)
	m, err := nc.Request(worker.DecideSubject(id), b, 10*time.Second)
	if err != nil {
		t.Fatalf("deciding %s: %v", id, err)
	}
	var r worker.DecisionReply
	if err := json.Unmarshal(m.Data, &r); err != nil {
		t.Fatalf("reply %s: %v", m.Data, err)
	}
	return r
}

func decision(approved bool, approver, comment string) map[string]any {
	return map[string]any{"approved": approved, "approver": approver, "comment": comment}
}

func outputs(t *testing.T, r worker.Result) approval.Decision {
	t.Helper()
	var d approval.Decision
	if err := json.Unmarshal(r.Outputs, &d); err != nil {
		t.Fatalf("outputs %s: %v", r.Outputs, err)
	}
	return d
}

// Approved and denied: each decision becomes the step's result in the
// contract's form; the waiting approvals hold no slot (a worker with
// one slot runs other work meanwhile) and leave the assignment stream.
func TestApproval_approveAndDeny(t *testing.T) {
	s := wt.StartServer(t, "")
	nc := wt.Connect(t, s.ClientURL())
	startWorker(t, nc, newExecutor(t, 1, 0), approvalCatalog(t), worker.NewConfig().WithID("w1").WithSlots(1))
	js := wt.JetStream(t, nc)
	ids := parkApprovals(t, nc, js, "ap-", 2, approvalFields(60000, "ana@acme.example", "ben@acme.example"))

	wt.Publish(t, js, "echo-", 1, "echo", map[string]any{"x": 1})
	if got := wt.Results(t, js, 1, 20*time.Second); got["echo-0"].Status != worker.StatusSuccess {
		t.Fatalf("other work while approvals wait: %+v", got)
	}
	// The echo's own assignment leaves the stream when its ack lands, which
	// may be just after its result: wait for that, with a bound that only
	// catches a hang.
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		n := wt.StreamMsgs(t, js, worker.StreamAssign)
		if n == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("parked approvals still in the assignment stream: %d", n)
		}
	}

	if r := decide(t, nc, ids[0], decision(true, "ana@acme.example", "go")); r.Error != nil || r.State != "approved" {
		t.Fatalf("approve: %+v", r)
	}
	if r := decide(t, nc, ids[1], decision(false, "ben@acme.example", "not on a Friday")); r.Error != nil || r.State != "denied" {
		t.Fatalf("deny: %+v", r)
	}
	got := wt.Results(t, js, 3, 20*time.Second)
	yes, no := got[ids[0]], got[ids[1]]
	if yes.Status != worker.StatusSuccess || no.Status != worker.StatusSuccess {
		t.Fatalf("results: %+v / %+v", yes, no)
	}
	if d := outputs(t, yes); !d.Approved || d.Approver != "ana@acme.example" || d.Comment != "go" || d.ApprovedAt.IsZero() {
		t.Fatalf("approved outputs: %s", yes.Outputs)
	}
	if d := outputs(t, no); d.Approved || d.Approver != "ben@acme.example" || d.Comment != "not on a Friday" {
		t.Fatalf("denied outputs: %s", no.Outputs)
	}
	if yes.Job != approval.Name || yes.RequestID != "req-"+ids[0] || yes.TraceID != "tr-"+ids[0] || yes.Version != "1" {
		t.Fatalf("correlation ids: %+v", yes)
	}
	// Decided once: a second decision finds nothing pending.
	if r := decide(t, nc, ids[0], decision(false, "ben@acme.example", "")); r.Error == nil || r.Error.Code != worker.DecisionNotFound {
		t.Fatalf("second decision: %+v", r)
	}
}

// Only a listed approver decides; a malformed decision names its field;
// neither ends the approval. A malformed input is a dead letter naming
// the job's field.
func TestApproval_refused(t *testing.T) {
	s := wt.StartServer(t, "")
	nc := wt.Connect(t, s.ClientURL())
	startWorker(t, nc, newExecutor(t, 2, 0), approvalCatalog(t), worker.NewConfig().WithID("w1"))
	js := wt.JetStream(t, nc)
	ids := parkApprovals(t, nc, js, "ref-", 1, approvalFields(60000, "ana@acme.example"))

	for _, c := range []struct {
		body        any
		code, field string
	}{
		{decision(true, "zed@acme.example", "let me"), worker.DecisionForbidden, "approver"},
		{decision(true, "ANA@acme.example", ""), worker.DecisionForbidden, "approver"},
		{map[string]any{"approver": "ana@acme.example"}, worker.DecisionInvalid, "approved"},
		{map[string]any{"approved": true}, worker.DecisionInvalid, "approver"},
		{map[string]any{"approved": true, "approver": "ana@acme.example", "by": "x"}, worker.DecisionInvalid, ""},
	} {
		r := decide(t, nc, ids[0], c.body)
		if r.Error == nil || r.Error.Code != c.code || r.Error.Field != c.field {
			t.Fatalf("%v: got %+v, want %s on %q", c.body, r, c.code, c.field)
		}
	}
	if r := decide(t, nc, "no-such-approval", decision(true, "ana@acme.example", "")); r.Error == nil || r.Error.Code != worker.DecisionNotFound {
		t.Fatalf("unknown approval: %+v", r)
	}
	if n := wt.StreamMsgs(t, js, worker.StreamResult); n != 0 {
		t.Fatalf("a refused decision ended the approval: %d results", n)
	}
	if r := decide(t, nc, ids[0], decision(true, "ana@acme.example", "")); r.Error != nil || r.State != "approved" {
		t.Fatalf("the approver, after the refusals: %+v", r)
	}
	wt.Publish(t, js, "bad-", 1, approval.Name, map[string]any{"prompt": "?", "timeout_ms": 1000, "approvers": []string{}})
	got := wt.Results(t, js, 2, 20*time.Second)
	if d := outputs(t, got[ids[0]]); !d.Approved || d.Approver != "ana@acme.example" {
		t.Fatalf("approved: %+v", got[ids[0]])
	}
	if r := got["bad-0"]; r.Status != worker.StatusError || r.Error == nil || r.Error.Code != abi.CodeInvalidInput.Name() {
		t.Fatalf("invalid input: %+v", r)
	}
	if n := wt.StreamMsgs(t, js, worker.StreamDLQ); n != 1 {
		t.Fatalf("dead letters: %d, want 1", n)
	}
}

// No decision by the deadline is timeout; a cancel request withdraws the
// approval as cancelled. Neither can be decided afterwards.
func TestApproval_timeoutAndCancel(t *testing.T) {
	s := wt.StartServer(t, "")
	nc := wt.Connect(t, s.ClientURL())
	startWorker(t, nc, newExecutor(t, 2, 0), approvalCatalog(t), worker.NewConfig().WithID("w1"))
	js := wt.JetStream(t, nc)
	late := parkApprovals(t, nc, js, "late-", 1, approvalFields(300, "ana"))
	gone := parkApprovals(t, nc, js, "gone-", 1, approvalFields(60000, "ana"))
	b, _ := json.Marshal(worker.Cancel{AssignmentID: gone[0], Reason: "the release was abandoned"})
	publishRaw(t, js, worker.SubjectCancel, b)

	got := wt.Results(t, js, 2, 20*time.Second)
	if r := got[late[0]]; r.Status != worker.StatusTimeout || r.Error == nil || r.Error.Code != abi.CodeCancelledByTimeout.Name() {
		t.Fatalf("no decision in time: %+v", r)
	}
	if r := got[gone[0]]; r.Status != worker.StatusCancelled || r.Error == nil || r.Error.Code != abi.CodeCancelledByUser.Name() {
		t.Fatalf("cancelled: %+v", r)
	}
	for _, id := range []string{late[0], gone[0]} {
		if r := decide(t, nc, id, decision(true, "ana", "")); r.Error == nil {
			t.Fatalf("decided %s after it ended: %+v", id, r)
		}
	}
}

// A pending approval survives a restart of the worker and of its NATS
// server: decided after it, or expired after it when its deadline passed
// while nothing ran.
func TestApproval_restart(t *testing.T) {
	store := t.TempDir()
	start := func() (*worker.Server, *nats.Conn, *worker.Worker) {
		s, err := worker.StartServer(worker.ServerConfig{StoreDir: store, Listen: "127.0.0.1:0"})
		if err != nil {
			t.Fatal(err)
		}
		nc, err := nats.Connect(s.ClientURL())
		if err != nil {
			t.Fatal(err)
		}
		w, err := worker.New(nc, newExecutor(t, 2, 0), approvalCatalog(t), worker.NewConfig().WithID("w").WithFetchWait(100*time.Millisecond))
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if err := w.Start(ctx); err != nil {
			t.Fatal(err)
		}
		return s, nc, w
	}
	stop := func(s *worker.Server, nc *nats.Conn, w *worker.Worker) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := w.Shutdown(ctx); err != nil {
			t.Fatal(err)
		}
		nc.Close()
		s.Shutdown()
	}

	s, nc, w := start()
	js := wt.JetStream(t, nc)
	kept := parkApprovals(t, nc, js, "kept-", 1, approvalFields(60000, "ana"))
	lapsed := parkApprovals(t, nc, js, "lapsed-", 1, approvalFields(1000, "ana"))
	parked := time.Now()
	stop(s, nc, w)
	time.Sleep(time.Until(parked.Add(1200 * time.Millisecond))) // the short deadline passes while nothing runs

	s, nc, w = start()
	defer stop(s, nc, w)
	js = wt.JetStream(t, nc)
	if r := decide(t, nc, kept[0], decision(true, "ana", "after the restart")); r.Error != nil || r.State != "approved" {
		t.Fatalf("deciding after the restart: %+v", r)
	}
	got := wt.Results(t, js, 2, 20*time.Second)
	if d := outputs(t, got[kept[0]]); got[kept[0]].Status != worker.StatusSuccess || !d.Approved || d.Comment != "after the restart" {
		t.Fatalf("kept: %+v", got[kept[0]])
	}
	if r := got[lapsed[0]]; r.Status != worker.StatusTimeout {
		t.Fatalf("lapsed during the restart: %+v", r)
	}
}

// A worker whose blocks do not run human.approval takes no part: it
// answers no decision (one that did could not produce the result).
func TestApproval_notHosted(t *testing.T) {
	s := wt.StartServer(t, "")
	nc := wt.Connect(t, s.ClientURL())
	c, _ := catalog(t)
	startWorker(t, nc, newExecutor(t, 1, 0), c, worker.NewConfig().WithID("w1"))
	b, _ := json.Marshal(decision(true, "ana", ""))
	if _, err := nc.Request(worker.DecideSubject("x"), b, time.Second); !errors.Is(err, nats.ErrNoResponders) {
		t.Fatalf("a decision to a worker without approvals: %v, want no responders", err)
	}
}

// An approval decided by a worker that stopped before publishing its
// result is published by the next worker to start, and its record
// deleted.
func TestApproval_decidedUnpublished(t *testing.T) {
	s := wt.StartServer(t, "")
	nc := wt.Connect(t, s.ClientURL())
	js := wt.JetStream(t, nc)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	kv, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: worker.BucketApprovals, Storage: jetstream.FileStorage, History: 1})
	if err != nil {
		t.Fatal(err)
	}
	var a map[string]any
	if err := json.Unmarshal(wt.Assignment("left-0", approval.Name, approvalFields(60000, "ana")), &a); err != nil {
		t.Fatal(err)
	}
	now := time.Now().UnixMilli()
	rec, _ := json.Marshal(map[string]any{"assignment": a, "prompt": "Deploy build 142?", "approvers": []string{"ana"},
		"timeout_ms": 60000, "accepted_at": now - 1000, "deadline": now + 59000, "worker_id": "gone",
		"state": "approved", "approver": "ana", "comment": "before the stop", "decided_at": now})
	if _, err := kv.Put(ctx, "left-0", rec); err != nil {
		t.Fatal(err)
	}
	startWorker(t, nc, newExecutor(t, 1, 0), approvalCatalog(t), worker.NewConfig().WithID("w1"))
	r := wt.Results(t, js, 1, 20*time.Second)["left-0"]
	if d := outputs(t, r); r.Status != worker.StatusSuccess || !d.Approved || d.Comment != "before the stop" {
		t.Fatalf("result: %+v", r)
	}
	wt.Eventually(t, 10*time.Second, "record deleted", func() bool {
		_, err := kv.Get(ctx, "left-0")
		return errors.Is(err, jetstream.ErrKeyNotFound)
	})
}
