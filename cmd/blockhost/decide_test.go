package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/blockhost/blockhost/host/worker"
	wt "github.com/blockhost/blockhost/host/worker/workertest"
	"github.com/blockhost/blockhost/plugins/approval"
)

// `blockhost worker` hosts human.approval, `blockhost submit` asks and
// `blockhost decide` decides: a non-approver is refused (exit 1), the
// approver's decision is the step's result.
func TestDecide(t *testing.T) {
	srv := wt.StartServer(t, "")
	nc := wt.Connect(t, srv.ClientURL())
	js := wt.JetStream(t, nc)
	startWorkerProc(t, "--nats", srv.ClientURL(), "--worker-id", "d", "--heartbeat", "100ms")
	waitHeartbeat(t, nc, "d")
	requested, err := nc.SubscribeSync(worker.SubjectApprovalRequested)
	if err != nil {
		t.Fatal(err)
	}
	defer requested.Unsubscribe()

	in := filepath.Join(t.TempDir(), "ask.jsonl")
	line := `{"assignment_id":"deploy-142","job":{"type":"human.approval","prompt":"Deploy build 142?","timeout_ms":60000,"approvers":["ana@acme.example"]}}`
	if err := os.WriteFile(in, []byte(line+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if r := runSubmit("--nats", srv.ClientURL(), in); r.code != exitSuccess {
		t.Fatalf("submit: exit %d: %s", r.code, r.stderr)
	}
	if _, err := requested.NextMsg(30 * time.Second); err != nil {
		t.Fatalf("the approval was not parked: %v", err)
	}

	if r := runDecide("--nats", srv.ClientURL(), "--approver", "zed@acme.example", "--approve", "deploy-142"); r.code != exitError || !strings.Contains(r.stdout, worker.DecisionForbidden) {
		t.Fatalf("a non-approver: exit %d: %s %s", r.code, r.stdout, r.stderr)
	}
	if r := runDecide("--nats", srv.ClientURL(), "--approver", "ana@acme.example", "deploy-142"); r.code != exitUsage {
		t.Fatalf("neither --approve nor --deny: exit %d", r.code)
	}
	r := runDecide("--nats", srv.ClientURL(), "--approver", "ana@acme.example", "--deny", "--comment", "not today", "deploy-142")
	if r.code != exitSuccess {
		t.Fatalf("the approver: exit %d: %s %s", r.code, r.stdout, r.stderr)
	}
	res := wt.Results(t, js, 1, 30*time.Second)["deploy-142"]
	var d approval.Decision
	if err := json.Unmarshal(res.Outputs, &d); err != nil || res.Status != worker.StatusSuccess || d.Approved || d.Approver != "ana@acme.example" || d.Comment != "not today" {
		t.Fatalf("result: %+v", res)
	}
}

// runDecide runs `blockhost decide` in this process.
func runDecide(args ...string) cliResult {
	var out, errb bytes.Buffer
	code := runMain(context.Background(), append([]string{"blockhost", "decide"}, args...), strings.NewReader(""), &out, &errb)
	return cliResult{code: code, stdout: out.String(), stderr: errb.String()}
}
