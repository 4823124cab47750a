package serve

import (
	"net/http"
	"testing"
	"time"
)

// Finished steps — a block's and a withdrawn approval's — are deleted
// once the retention passes; a pending approval, however old, is kept.
func TestRetention_prunesFinishedSteps(t *testing.T) {
	h := start(t, testConfig(t, t.TempDir(), nil).WithRetention(300*time.Millisecond))
	pending := h.submit(tokAna, approvalInput(60_000, "ana@acme"))
	done := h.submit(tokAna, map[string]any{"block": "test.echo", "input": map[string]any{"x": 1}})
	h.waitStatus(tokAna, done, "success")
	withdrawn := h.submit(tokAna, approvalInput(60_000, "ana@acme"))
	if r := h.do("DELETE", "/v1/steps/"+withdrawn, tokAna, nil); r.code != http.StatusOK {
		t.Fatalf("cancel: %d %s", r.code, r.body)
	}
	deadline := time.Now().Add(20 * time.Second) // a hang-catcher only
	for _, id := range []string{done, withdrawn} {
		for h.do("GET", "/v1/steps/"+id, tokAna, nil).code != http.StatusNotFound {
			if time.Now().After(deadline) {
				t.Fatalf("step %s was not pruned: %v", id, h.step(tokAna, id))
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	if v := h.step(tokAna, pending); v["status"] != "waiting" {
		t.Fatalf("the pending approval: %v", v)
	}
}

// A negative retention keeps every step (pruning with it would delete
// every finished step at once: its cut-off lies in the future).
func TestRetention_keep(t *testing.T) {
	h := start(t, testConfig(t, t.TempDir(), nil).WithRetention(-time.Nanosecond))
	id := h.submit(tokAna, map[string]any{"block": "test.echo", "input": map[string]any{"x": 1}})
	h.waitStatus(tokAna, id, "success")
	time.Sleep(300 * time.Millisecond) // several pruning intervals, had pruning started
	if v := h.step(tokAna, id); v["status"] != "success" {
		t.Fatalf("kept step: %v", v)
	}
}
