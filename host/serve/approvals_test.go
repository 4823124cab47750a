package serve

import (
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
)

func TestApproval_approveAndDeny(t *testing.T) {
	h := start(t, testConfig(t, t.TempDir(), nil))
	for _, approved := range []bool{true, false} {
		id := h.submit(tokAna, approvalInput(60_000, "ana@acme", "ben@acme"))
		if v := h.step(tokAna, id); v["status"] != "waiting" || v["approval"].(map[string]any)["state"] != "pending" {
			t.Fatalf("submitted approval: %v", v)
		}
		if n := len(h.do("GET", "/v1/approvals", tokBen, nil).json(t)["steps"].([]any)); n != 1 {
			t.Fatalf("pending approvals listed: %d", n)
		}
		r := h.do("POST", "/v1/approvals/"+id, tokBen, map[string]any{"approved": approved, "comment": "looks fine"})
		if r.code != 200 {
			t.Fatalf("decide: %d %s", r.code, r.body)
		}
		// A denial is a successful step: it obtained a decision.
		v := h.waitStatus(tokAna, id, "success")
		out := v["result"].(map[string]any)["output"].(map[string]any)
		if out["approved"] != approved || out["approver"] != "ben@acme" || out["comment"] != "looks fine" || out["approved_at"] == "" {
			t.Fatalf("output: %v", out)
		}
		// Decided once: a second decision conflicts.
		if r := h.do("POST", "/v1/approvals/"+id, tokAna, map[string]any{"approved": true}); r.code != http.StatusConflict {
			t.Fatalf("second decision: %d %s", r.code, r.body)
		}
	}
}

func TestApproval_timeout(t *testing.T) {
	h := start(t, testConfig(t, t.TempDir(), nil))
	id := h.submit(tokAna, approvalInput(200, "ana@acme"))
	v := h.waitStatus(tokAna, id, "timeout")
	if errorCode(v) != "cancelled_by_timeout" || v["approval"].(map[string]any)["state"] != "expired" {
		t.Fatalf("expired approval: %v", v)
	}
	if r := h.do("POST", "/v1/approvals/"+id, tokAna, map[string]any{"approved": true}); r.code != http.StatusConflict {
		t.Fatalf("decision after the deadline: %d %s", r.code, r.body)
	}
}

func TestApproval_cancelWithdraws(t *testing.T) {
	h := start(t, testConfig(t, t.TempDir(), nil))
	id := h.submit(tokAna, approvalInput(60_000, "ana@acme"))
	r := h.do("DELETE", "/v1/steps/"+id, tokAna, nil)
	if r.code != 200 || r.json(t)["status"] != "cancelled" {
		t.Fatalf("cancel: %d %s", r.code, r.body)
	}
	v := h.step(tokAna, id)
	if errorCode(v) != "cancelled_by_user" || v["approval"].(map[string]any)["state"] != "withdrawn" {
		t.Fatalf("withdrawn approval: %v", v)
	}
	if r := h.do("POST", "/v1/approvals/"+id, tokAna, map[string]any{"approved": true}); r.code != http.StatusConflict {
		t.Fatalf("decision after withdrawal: %d %s", r.code, r.body)
	}
}

// TestApproval_holdsNoWorker parks more approvals than the executor has
// workers in every pool: waiting holds none, so other steps still run.
func TestApproval_holdsNoWorker(t *testing.T) {
	h := start(t, testConfig(t, t.TempDir(), nil))
	for range 40 {
		h.submit(tokAna, approvalInput(60_000, "ana@acme"))
	}
	for _, pool := range h.s.exec.Pools() {
		if st, _ := h.s.exec.Stats(pool); st.InFlight+st.Queued != 0 {
			t.Fatalf("pool %s holds %d running and %d queued steps for parked approvals", pool, st.InFlight, st.Queued)
		}
	}
	r := h.do("POST", "/v1/steps?wait=10s", tokAna, map[string]any{"block": "test.echo"})
	if r.code != 200 || r.json(t)["status"] != "success" {
		t.Fatalf("a step beside 40 pending approvals: %d %s", r.code, r.body)
	}
	if n := len(h.do("GET", "/v1/steps?status=waiting&limit=100", tokAna, nil).json(t)["steps"].([]any)); n != 40 {
		t.Fatalf("%d approvals waiting, want 40", n)
	}
	if !strings.Contains(string(h.do("GET", "/metrics", tokAna, nil).body), "blockhost_serve_approvals_pending 40\n") {
		t.Fatal("the pending-approvals gauge does not say 40")
	}
}

// TestApproval_oneDecision races approvers deciding the same step: one
// decision is taken, the others are told it was decided.
func TestApproval_oneDecision(t *testing.T) {
	h := start(t, testConfig(t, t.TempDir(), nil))
	id := h.submit(tokAna, approvalInput(60_000, "ana@acme", "ben@acme"))
	codes := make(chan int, 8)
	var wg sync.WaitGroup
	for i := range 8 {
		tok := []string{tokAna, tokBen}[i%2]
		wg.Go(func() { codes <- h.do("POST", "/v1/approvals/"+id, tok, map[string]any{"approved": i%3 == 0}).code })
	}
	wg.Wait()
	close(codes)
	n := map[int]int{}
	for c := range codes {
		n[c]++
	}
	if n[200] != 1 || n[409] != 7 {
		t.Fatalf("answers by status: %v, want one 200 and seven 409", n)
	}
	h.waitStatus(tokAna, id, "success")
}

// TestPage_withoutJavaScript reads the page and decides with a plain
// form post, as a browser without JavaScript does.
func TestPage_withoutJavaScript(t *testing.T) {
	h := start(t, testConfig(t, t.TempDir(), nil).WithInsecureLocal(true))
	id := h.submit("", approvalInput(60_000, "local"))
	r := h.do("GET", "/", "", nil)
	if r.code != 200 || !strings.Contains(string(r.body), `id="approve-`+id+`"`) || !strings.Contains(string(r.body), "Ship it?") {
		t.Fatalf("page: %d\n%s", r.code, r.body)
	}
	if csp := r.hdr.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") {
		t.Fatalf("CSP %q", csp)
	}
	client := *h.ts.Client()
	client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := client.PostForm(h.ts.URL+"/v1/approvals/"+id, url.Values{"approved": {"true"}, "comment": {"from the form"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("form decision: %d", resp.StatusCode)
	}
	v := h.waitStatus("", id, "success")
	if out := v["result"].(map[string]any)["output"].(map[string]any); out["comment"] != "from the form" || out["approver"] != "local" {
		t.Fatalf("output: %v", out)
	}
	// Signed out, the page asks for a token and shows nothing else.
	h2 := start(t, testConfig(t, t.TempDir(), nil))
	r = h2.do("GET", "/", "", nil)
	if r.code != http.StatusUnauthorized || !strings.Contains(string(r.body), `name="token"`) || strings.Contains(string(r.body), "Recent steps") {
		t.Fatalf("signed-out page: %d\n%s", r.code, r.body)
	}
}
