package serve

import (
	"errors"
	"net/http"
	"strings"
	"testing"
)

func TestServe_submitAndWait(t *testing.T) {
	h := start(t, testConfig(t, t.TempDir(), nil))
	r := h.do("POST", "/v1/steps?wait=10s", tokAna, map[string]any{"block": "test.echo", "input": map[string]any{"x": 1}})
	if r.code != http.StatusOK {
		t.Fatalf("submit with wait: %d %s", r.code, r.body)
	}
	res := r.json(t)
	// With ?wait= and a finished step, the answer is the result itself.
	if res["status"] != "success" || res["block"] != "test.echo" || res["step_id"] == "" {
		t.Fatalf("result: %s", r.body)
	}
	if out, _ := res["output"].(map[string]any); out["x"] != float64(1) {
		t.Fatalf("output: %s", r.body)
	}
	v := h.step(tokAna, res["step_id"].(string))
	if v["status"] != "success" || v["tenant"] != "acme" || v["submitted_by"] != "ana@acme" {
		t.Fatalf("view: %v", v)
	}
	if loc := r.hdr.Get("Location"); loc != "/v1/steps/"+res["step_id"].(string) {
		t.Fatalf("Location %q", loc)
	}
}

func TestServe_auth(t *testing.T) {
	g := newGate()
	h := start(t, testConfig(t, t.TempDir(), g))
	id := h.submit(tokAna, map[string]any{"block": "test.echo"})
	approvalID := h.submit(tokAna, approvalInput(60_000, "ana@acme"))

	for _, tc := range []struct {
		name, method, path, token string
		body                      any
		code                      int
		field                     string
	}{
		{"no token submit", "POST", "/v1/steps", "", map[string]any{"block": "test.echo"}, 401, "Authorization"},
		{"no token get", "GET", "/v1/steps/" + id, "", nil, 401, "Authorization"},
		{"no token list", "GET", "/v1/steps", "", nil, 401, "Authorization"},
		{"no token blocks", "GET", "/v1/blocks", "", nil, 401, "Authorization"},
		{"no token metrics", "GET", "/metrics", "", nil, 401, "Authorization"},
		{"unknown token", "GET", "/v1/steps/" + id, "not-a-token-0123456789", nil, 401, "Authorization"},
		{"wrong tenant get", "GET", "/v1/steps/" + id, tokZed, nil, 404, "id"},
		{"wrong tenant cancel", "DELETE", "/v1/steps/" + approvalID, tokZed, nil, 404, "id"},
		{"wrong tenant submit", "POST", "/v1/steps", tokZed, map[string]any{"block": "test.echo", "tenant": "acme"}, 403, "tenant"},
		{"wrong tenant decide", "POST", "/v1/approvals/" + approvalID, tokZed, map[string]any{"approved": true}, 404, "id"},
		{"non-approver decide", "POST", "/v1/approvals/" + approvalID, tokBen, map[string]any{"approved": true}, 403, "approver"},
		{"operator of the tenant is no approver", "POST", "/v1/approvals/" + approvalID, tokOps, map[string]any{"approved": true}, 403, "approver"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := h.do(tc.method, tc.path, tc.token, tc.body)
			if r.code != tc.code || r.errField(t) != tc.field {
				t.Fatalf("%d field %q, want %d field %q: %s", r.code, r.errField(t), tc.code, tc.field, r.body)
			}
		})
	}
	// The refused decisions left the approval pending; a listed approver
	// decides it.
	if v := h.step(tokAna, approvalID); v["status"] != "waiting" {
		t.Fatalf("after refused decisions: %v", v)
	}
	// A tenant lists only its own steps; an operator sees every tenant's.
	h.submit(tokZed, map[string]any{"block": "test.echo"})
	for tok, want := range map[string]int{tokAna: 2, tokZed: 1, tokOps: 3} {
		steps := h.do("GET", "/v1/steps", tok, nil).json(t)["steps"].([]any)
		if len(steps) != want {
			t.Errorf("token %s lists %d steps, want %d", tok[:3], len(steps), want)
		}
	}
	if r := h.do("GET", "/_health", "", nil); r.code != 200 || r.json(t)["status"] != "healthy" {
		t.Fatalf("health is anonymous: %d %s", r.code, r.body)
	}
}

func TestServe_insecureLocal(t *testing.T) {
	cfg := testConfig(t, t.TempDir(), nil).WithInsecureLocal(true)
	h := start(t, cfg)
	r := h.do("POST", "/v1/steps?wait=5s", "", map[string]any{"block": "test.echo"})
	if r.code != 200 || r.json(t)["status"] != "success" {
		t.Fatalf("anonymous local submit: %d %s", r.code, r.body)
	}
	// Tokens still identify their holders.
	if v := h.do("GET", "/v1/steps", tokAna, nil).json(t)["steps"].([]any); len(v) != 0 {
		t.Fatalf("ana sees local's steps: %v", v)
	}
	// DNS rebinding: a foreign Host is refused.
	req, _ := http.NewRequest("GET", h.ts.URL+"/v1/steps", nil)
	req.Host = "evil.example:80"
	resp, err := h.ts.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("foreign Host: %d", resp.StatusCode)
	}
	// Cross-site request forgery: a foreign Origin may not change state.
	req, _ = http.NewRequest("POST", h.ts.URL+"/v1/steps", strings.NewReader(`{"block":"test.echo"}`))
	req.Header.Set("Origin", "https://evil.example")
	req.Header.Set("Content-Type", "application/json")
	if resp, err = h.ts.Client().Do(req); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("foreign Origin: %d", resp.StatusCode)
	}
}

func TestServe_badRequests(t *testing.T) {
	h := start(t, testConfig(t, t.TempDir(), nil))
	id := h.submit(tokAna, map[string]any{"block": "test.echo"})
	for _, tc := range []struct {
		name, method, path string
		body               any
		code               int
		field              string
	}{
		{"unknown field", "POST", "/v1/steps", `{"block":"test.echo","prio":1}`, 400, "prio"},
		{"not JSON", "POST", "/v1/steps", `{"block":`, 400, "body"},
		{"empty body", "POST", "/v1/steps", ``, 400, "body"},
		{"trailing data", "POST", "/v1/steps", `{"block":"test.echo"} {}`, 400, "body"},
		{"wrong type", "POST", "/v1/steps", `{"block":7}`, 400, "block"},
		{"no block", "POST", "/v1/steps", `{"input":{}}`, 400, "block"},
		{"unknown block", "POST", "/v1/steps", `{"block":"nope"}`, 400, "block"},
		{"bad priority", "POST", "/v1/steps", `{"block":"test.echo","priority":"urgent"}`, 400, "priority"},
		{"long idempotency key", "POST", "/v1/steps", `{"block":"test.echo","idempotency_key":"` + strings.Repeat("k", 300) + `"}`, 400, "idempotency_key"},
		{"too large", "POST", "/v1/steps", `{"block":"test.echo","input":"` + strings.Repeat("x", 5000) + `"}`, 413, "body"},
		{"bad wait", "POST", "/v1/steps?wait=soon", `{"block":"test.echo"}`, 400, "wait"},
		{"wait too long", "GET", "/v1/steps/" + id + "?wait=1h", nil, 400, "wait"},
		{"approval without prompt", "POST", "/v1/steps", `{"block":"human.approval","input":{"timeout_ms":1000,"approvers":["a"]}}`, 400, "input.prompt"},
		{"approval without timeout", "POST", "/v1/steps", `{"block":"human.approval","input":{"prompt":"?","approvers":["a"]}}`, 400, "input.timeout_ms"},
		{"approval timeout as text", "POST", "/v1/steps", `{"block":"human.approval","input":{"prompt":"?","timeout_ms":"1s","approvers":["a"]}}`, 400, "input.timeout_ms"},
		{"approval without approvers", "POST", "/v1/steps", `{"block":"human.approval","input":{"prompt":"?","timeout_ms":1000}}`, 400, "input.approvers"},
		{"approval unknown input field", "POST", "/v1/steps", `{"block":"human.approval","input":{"prompt":"?","timeout_ms":1000,"approvers":["a"],"x":1}}`, 400, "input.x"},
		{"approval no input", "POST", "/v1/steps", `{"block":"human.approval"}`, 400, "input"},
		{"bad status filter", "GET", "/v1/steps?status=done", nil, 400, "status"},
		{"bad limit", "GET", "/v1/steps?limit=0", nil, 400, "limit"},
		{"bad cursor", "GET", "/v1/steps?cursor=xyz", nil, 400, "cursor"},
		{"decision without approved", "POST", "/v1/approvals/" + id, `{"comment":"ok"}`, 400, "approved"},
		{"decision on a step that is no approval", "POST", "/v1/approvals/" + id, `{"approved":true}`, 409, "id"},
		{"unknown step", "GET", "/v1/steps/0123456789abcdef0123456789abcdef", nil, 404, "id"},
		{"wrong method", "PUT", "/v1/steps", `{}`, 405, "method"},
		{"unknown path", "GET", "/v2/steps", nil, 404, "path"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := h.do(tc.method, tc.path, tokAna, tc.body)
			if r.code != tc.code || r.errField(t) != tc.field {
				t.Fatalf("%d field %q, want %d field %q: %s", r.code, r.errField(t), tc.code, tc.field, r.body)
			}
		})
	}
	// A wrong media type is refused, naming the header.
	req, _ := http.NewRequest("POST", h.ts.URL+"/v1/steps", strings.NewReader(`block=test.echo`))
	req.Header.Set("Authorization", "Bearer "+tokAna)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := h.ts.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnsupportedMediaType {
		t.Fatalf("form body: %d", resp.StatusCode)
	}
}

func TestServe_cancel(t *testing.T) {
	g := newGate()
	h := start(t, testConfig(t, t.TempDir(), g))
	id := h.submit(tokAna, map[string]any{"block": "test.gate"})
	<-g.started
	r := h.do("DELETE", "/v1/steps/"+id, tokAna, nil)
	if r.code != 200 {
		t.Fatalf("cancel: %d %s", r.code, r.body)
	}
	v := h.waitStatus(tokAna, id, "cancelled")
	if errorCode(v) != "cancelled_by_user" {
		t.Fatalf("cancelled step: %v", v)
	}
	if r := h.do("DELETE", "/v1/steps/"+id, tokAna, nil); r.code != 409 || r.errField(t) != "id" {
		t.Fatalf("second cancel: %d %s", r.code, r.body)
	}
}

func TestServe_idempotencyKey(t *testing.T) {
	h := start(t, testConfig(t, t.TempDir(), nil))
	sub := map[string]any{"block": "test.echo", "idempotency_key": "order-17"}
	first := h.submit(tokAna, sub)
	r := h.do("POST", "/v1/steps", tokAna, sub)
	if r.code != 200 || r.json(t)["id"] != first || r.hdr.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("replay: %d %s", r.code, r.body)
	}
	// Keys are per tenant.
	if other := h.submit(tokZed, sub); other == first {
		t.Fatal("another tenant's key returned acme's step")
	}
}

func TestServe_listPages(t *testing.T) {
	h := start(t, testConfig(t, t.TempDir(), nil))
	want := map[string]bool{}
	for range 5 {
		want[h.submit(tokAna, map[string]any{"block": "test.echo"})] = true
	}
	seen := map[string]bool{}
	cursor := ""
	for pages := 0; ; pages++ {
		if pages > 5 {
			t.Fatal("pagination does not end")
		}
		v := h.do("GET", "/v1/steps?limit=2&block=test.echo&cursor="+cursor, tokAna, nil).json(t)
		for _, s := range v["steps"].([]any) {
			id := s.(map[string]any)["id"].(string)
			if seen[id] {
				t.Fatalf("step %s listed twice", id)
			}
			seen[id] = true
		}
		c, _ := v["next_cursor"].(string)
		if c == "" {
			break
		}
		cursor = c
	}
	if len(seen) != len(want) {
		t.Fatalf("listed %d of %d steps", len(seen), len(want))
	}
	if n := len(h.do("GET", "/v1/steps?block=human.approval", tokAna, nil).json(t)["steps"].([]any)); n != 0 {
		t.Fatalf("block filter: %d steps", n)
	}
}

func TestConfig_errors(t *testing.T) {
	for name, src := range map[string]string{
		"unknown attribute":  `block "a" { manifest = "a.hcl"  moduel = "x" }`,
		"short secret":       `tenant "t" { token "a" { secret = "short" } }`,
		"two sources":        `tenant "t" { token "a" { secret = "0123456789abcdef0" sha256 = "00" } }`,
		"duplicate identity": `tenant "t" { token "a" { secret = "0123456789abcdef0" } } tenant "u" { token "a" { secret = "0123456789abcdef1" } }`,
		"shared token":       `tenant "t" { token "a" { secret = "0123456789abcdef0" } token "b" { secret = "0123456789abcdef0" } }`,
		"bad pin":            `block "a" { manifest = "a.hcl" sha256 = "abc" }`,
		"builtin name":       `block "human.approval" { manifest = "a.hcl" }`,
		"unknown pool":       `block "a" { manifest = "a.hcl" pool = "gpu" }`,
	} {
		t.Run(name, func(t *testing.T) {
			_, err := Parse([]byte(src), "serve.hcl")
			var ce *ConfigError
			if !errors.Is(err, ErrInvalidConfig) || !errors.As(err, &ce) || !strings.HasPrefix(ce.Where, "serve.hcl") {
				t.Fatalf("err = %v", err)
			}
		})
	}
	// HCL's JSON form, as docs/serve.md shows it.
	f, err := Parse([]byte(`{
  "block": { "hello": { "manifest": "hello.hcl", "idempotent": true } },
  "pool": { "default": { "concurrency": 4, "queue_size": 64 } },
  "tenant": { "acme": { "token": { "ana@acme.example": { "sha256": "97f2b0d4c14468e5dbbddbee1d272e320b75bffee99d7a54e65b8469018b4273" } } } }
}`), "/etc/blockhost/serve.json")
	if err != nil || len(f.Blocks) != 1 || !f.Blocks[0].Idempotent || f.Blocks[0].Manifest != "/etc/blockhost/hello.hcl" ||
		f.Pools["default"].QueueSize != 64 || len(f.Tenants) != 1 || f.Tenants[0].Tokens[0].Identity != "ana@acme.example" {
		t.Fatalf("JSON configuration: %+v, %v", f, err)
	}
	if _, err := New(t.Context(), NewConfig().WithStoreDir(t.TempDir())); !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("no tenants, not insecure-local: %v", err)
	}
}
