package serve

import (
	"strings"
	"testing"
	"time"
)

// The restart tests stop a server — gracefully, or as a killed process
// would — and start another on the same store.

func TestRestart_resultsSurvive(t *testing.T) {
	dir := t.TempDir()
	h := start(t, testConfig(t, dir, nil))
	id := h.submit(tokAna, map[string]any{"block": "test.echo", "input": map[string]any{"n": 7}})
	h.waitStatus(tokAna, id, "success")
	h.crash()

	h2 := start(t, testConfig(t, dir, nil))
	v := h2.step(tokAna, id)
	out, _ := v["result"].(map[string]any)["output"].(map[string]any)
	if v["status"] != "success" || out["n"] != float64(7) {
		t.Fatalf("after restart: %v", v)
	}
}

func TestRestart_pendingApprovalIsDecidedAfter(t *testing.T) {
	dir := t.TempDir()
	h := start(t, testConfig(t, dir, nil))
	id := h.submit(tokAna, approvalInput(60_000, "ana@acme"))
	h.crash()

	h2 := start(t, testConfig(t, dir, nil))
	if v := h2.step(tokAna, id); v["status"] != "waiting" {
		t.Fatalf("after restart: %v", v)
	}
	// Its deadline is armed again.
	if !strings.Contains(string(h2.do("GET", "/metrics", tokAna, nil).body), "blockhost_serve_approvals_pending 1\n") {
		t.Fatal("the restarted server holds no pending approval")
	}
	if r := h2.do("POST", "/v1/approvals/"+id, tokAna, map[string]any{"approved": true, "comment": "after the restart"}); r.code != 200 {
		t.Fatalf("decide after restart: %d %s", r.code, r.body)
	}
	v := h2.waitStatus(tokAna, id, "success")
	if out := v["result"].(map[string]any)["output"].(map[string]any); out["approved"] != true || out["comment"] != "after the restart" {
		t.Fatalf("output: %v", out)
	}
}

func TestRestart_approvalExpiresWhileDown(t *testing.T) {
	dir := t.TempDir()
	h := start(t, testConfig(t, dir, nil))
	id := h.submit(tokAna, approvalInput(300, "ana@acme"))
	h.stop() // graceful: the approval stays pending
	time.Sleep(400 * time.Millisecond)

	h2 := start(t, testConfig(t, dir, nil))
	if v := h2.waitStatus(tokAna, id, "timeout"); errorCode(v) != "cancelled_by_timeout" {
		t.Fatalf("after restart: %v", v)
	}
}

func TestRestart_decidedBeforeCrashFinishesAfter(t *testing.T) {
	dir := t.TempDir()
	h := start(t, testConfig(t, dir, nil))
	id := h.submit(tokAna, approvalInput(60_000, "ana@acme"))
	// The decision is stored, and the host dies before the result is.
	if err := h.s.st.decide(t.Context(), id, approvalDenied, "ana@acme", "no", time.Now()); err != nil {
		t.Fatal(err)
	}
	h.crash()

	h2 := start(t, testConfig(t, dir, nil))
	v := h2.waitStatus(tokAna, id, "success")
	if out := v["result"].(map[string]any)["output"].(map[string]any); out["approved"] != false || out["comment"] != "no" {
		t.Fatalf("output: %v", out)
	}
}

func TestRestart_runningStepIsReportedAsInternalError(t *testing.T) {
	dir := t.TempDir()
	g := newGate()
	h := start(t, testConfig(t, dir, g))
	// may_rerun is not enough: test.gate is not idempotent.
	id := h.submit(tokAna, map[string]any{"block": "test.gate", "may_rerun": true})
	<-g.started
	h.crash()

	h2 := start(t, testConfig(t, dir, g))
	v := h2.step(tokAna, id)
	res, _ := v["result"].(map[string]any)
	e, _ := res["error"].(map[string]any)
	if v["status"] != "error" || e["name"] != "internal_error" || e["message"] != "host stopped during the step" {
		t.Fatalf("after restart: %v", v)
	}
	if n := g.runs.Load(); n != 1 {
		t.Fatalf("the block ran %d times", n)
	}
}

func TestRestart_runningStepMayRunAgain(t *testing.T) {
	dir := t.TempDir()
	g := newGate()
	h := start(t, testConfig(t, dir, g))
	id := h.submit(tokAna, map[string]any{"block": "test.gate_idempotent", "may_rerun": true})
	<-g.started
	h.crash()

	h2 := start(t, testConfig(t, dir, g))
	if again := <-g.started; again != id {
		t.Fatalf("ran %s again, want %s", again, id)
	}
	close(g.release)
	h2.waitStatus(tokAna, id, "success")
}

func TestRestart_queuedStepRunsAfter(t *testing.T) {
	dir := t.TempDir()
	g := newGate()
	cfg := testConfig(t, dir, g)
	cfg.file.Pools["default"] = executorPool(1)
	h := start(t, cfg)
	first := h.submit(tokAna, map[string]any{"block": "test.gate"})
	<-g.started
	queued := h.submit(tokAna, map[string]any{"block": "test.echo"}) // waits for the one worker
	if v := h.step(tokAna, queued); v["status"] != "queued" {
		t.Fatalf("second step: %v", v)
	}
	h.crash()

	close(g.release)
	h2 := start(t, testConfig(t, dir, g))
	h2.waitStatus(tokAna, queued, "success")
	if v := h2.step(tokAna, first); errorCode(v) != "internal_error" {
		t.Fatalf("first step: %v", v)
	}
}

// TestShutdown_drains lets a running step finish within the drain
// timeout, and hands back what cannot.
func TestShutdown_drains(t *testing.T) {
	dir := t.TempDir()
	g := newGate()
	cfg := testConfig(t, dir, g)
	cfg.file.Pools["default"] = executorPool(1)
	h := start(t, cfg)
	running := h.submit(tokAna, map[string]any{"block": "test.gate"})
	<-g.started
	queued := h.submit(tokAna, map[string]any{"block": "test.echo"})
	approval := h.submit(tokAna, approvalInput(60_000, "ana@acme"))

	// Within the drain timeout the running step finishes, and the queued
	// one after it.
	go func() { time.Sleep(200 * time.Millisecond); close(g.release) }()
	h.stop()

	h2 := start(t, testConfig(t, dir, g))
	for id, want := range map[string]string{running: "success", queued: "success", approval: "waiting"} {
		if v := h2.step(tokAna, id); v["status"] != want {
			t.Errorf("step %s: %v, want %s", id, v, want)
		}
	}
}

func TestShutdown_handsBackAtTheDrainTimeout(t *testing.T) {
	dir := t.TempDir()
	g := newGate()
	cfg := testConfig(t, dir, g)
	cfg.file.Pools["default"] = executorPool(1)
	h := start(t, cfg)
	running := h.submit(tokAna, map[string]any{"block": "test.gate"})
	<-g.started
	queued := h.submit(tokAna, map[string]any{"block": "test.echo"})

	h.ts.Close()
	ctx, cancel := contextWithTimeout(300 * time.Millisecond)
	defer cancel()
	_ = h.s.Shutdown(ctx)
	h.s = nil

	h2 := start(t, testConfig(t, dir, nil))
	if v := h2.step(tokAna, running); errorCode(v) != "internal_error" {
		t.Errorf("interrupted step: %v", v)
	}
	// The queued step never started: handed back, it runs now.
	h2.waitStatus(tokAna, queued, "success")
}
