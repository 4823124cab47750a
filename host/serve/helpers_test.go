package serve

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/blockhost/blockhost/host"
	"github.com/blockhost/blockhost/host/executor"
	"github.com/blockhost/blockhost/plugins"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// The test blocks are built-in blocks of the plugins registry, as
// human.approval is; test.gate runs the gate of the current test.
var currentGate atomic.Pointer[gate]

func init() {
	plugins.Register(plugins.Plugin{Name: "test.echo", Run: echo})
	gated := func(ctx context.Context, call *host.Call) ([]byte, error) { return currentGate.Load().run(ctx, call) }
	plugins.Register(plugins.Plugin{Name: "test.gate", Run: gated})
	plugins.Register(plugins.Plugin{Name: "test.gate_idempotent", Run: gated})
}

// Tokens of the test configuration.
const (
	tokAna   = "ana-token-0123456789" // acme, approver
	tokBen   = "ben-token-0123456789" // acme, not an approver in the tests
	tokZed   = "zed-token-0123456789" // globex
	tokOps   = "ops-token-0123456789" // acme, operator
	testConf = `
tenant "acme" {
  token "ana@acme" { secret = "` + tokAna + `" }
  token "ben@acme" { env = "BLOCKHOST_TEST_BEN" }
  token "ops@acme" {
    secret   = "` + tokOps + `"
    operator = true
  }
}
tenant "globex" {
  token "zed@globex" { secret = "` + tokZed + `" }
}
`
)

// gate is a built-in test block that runs until released or cancelled.
type gate struct {
	started chan string
	release chan struct{}
	runs    atomic.Int32
}

func newGate() *gate { return &gate{started: make(chan string, 16), release: make(chan struct{})} }

func (g *gate) run(ctx context.Context, call *host.Call) ([]byte, error) {
	g.runs.Add(1)
	g.started <- call.Step.ID
	select {
	case <-g.release:
		return []byte(`{"released":true}`), nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func echo(_ context.Context, call *host.Call) ([]byte, error) { return call.Step.Input, nil }

// harness is one server over a real loopback listener.
type harness struct {
	t   *testing.T
	s   *Server
	ts  *httptest.Server
	dir string
	cfg Config
}

// testConfig is a configuration with the test tenants, the test blocks
// and a store in dir.
func testConfig(t *testing.T, dir string, g *gate) Config {
	t.Helper()
	t.Setenv("BLOCKHOST_TEST_BEN", tokBen)
	f, err := Parse([]byte(testConf), "test.hcl")
	if err != nil {
		t.Fatal(err)
	}
	cfg := NewConfig().WithStoreDir(dir).WithFile(f).WithMaxBody(4096)
	cfg.natives = []nativeBlock{{name: "test.echo", idempotent: true}}
	if g != nil {
		currentGate.Store(g)
		cfg.natives = append(cfg.natives, nativeBlock{name: "test.gate"}, nativeBlock{name: "test.gate_idempotent", idempotent: true})
	}
	return cfg
}

func start(t *testing.T, cfg Config) *harness {
	t.Helper()
	s, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	h := &harness{t: t, s: s, ts: httptest.NewServer(s.Handler()), cfg: cfg}
	t.Cleanup(h.stop)
	return h
}

// stop shuts the server down gracefully, once.
func (h *harness) stop() {
	if h.s == nil {
		return
	}
	h.ts.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := h.s.Shutdown(ctx); err != nil {
		h.t.Errorf("Shutdown: %v", err)
	}
	h.s = nil
}

// crash stops the server as a killed process would: the store is closed
// first, so nothing that happens afterwards reaches the file.
func (h *harness) crash() {
	h.ts.Close()
	h.s.st.db.Close()
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // no drain
	_ = h.s.Shutdown(ctx)
	h.s = nil
}

type reply struct {
	code int
	body []byte
	hdr  http.Header
}

func (r reply) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("not JSON (%d): %v: %s", r.code, err, r.body)
	}
	return m
}

// errField returns the field an error answer names.
func (r reply) errField(t *testing.T) string {
	t.Helper()
	e, ok := r.json(t)["error"].(map[string]any)
	if !ok {
		t.Fatalf("not an error answer (%d): %s", r.code, r.body)
	}
	f, _ := e["field"].(string)
	return f
}

func (h *harness) do(method, path, token string, body any) reply {
	h.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			h.t.Fatal(err)
		}
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, h.ts.URL+path, rd)
	if err != nil {
		h.t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := h.ts.Client().Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return reply{code: resp.StatusCode, body: b, hdr: resp.Header}
}

// submit submits a step and returns its ID.
func (h *harness) submit(token string, sub map[string]any) string {
	h.t.Helper()
	r := h.do("POST", "/v1/steps", token, sub)
	if r.code != http.StatusAccepted && r.code != http.StatusOK {
		h.t.Fatalf("submit: %d %s", r.code, r.body)
	}
	id, _ := r.json(h.t)["id"].(string)
	if id == "" {
		id, _ = r.json(h.t)["step_id"].(string)
	}
	return id
}

// step returns a step's view.
func (h *harness) step(token, id string) map[string]any {
	h.t.Helper()
	r := h.do("GET", "/v1/steps/"+id, token, nil)
	if r.code != http.StatusOK {
		h.t.Fatalf("get %s: %d %s", id, r.code, r.body)
	}
	return r.json(h.t)
}

// waitStatus waits until step id has status want; the bound only
// catches hangs.
func (h *harness) waitStatus(token, id, want string) map[string]any {
	h.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		v := h.do("GET", "/v1/steps/"+id+"?wait=2s", token, nil).json(h.t)
		if v["status"] == want {
			return v
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("step %s: status %v, want %s: %v", id, v["status"], want, v)
		}
	}
}

// errorCode returns the name of a view's result error code.
func errorCode(v map[string]any) string {
	res, _ := v["result"].(map[string]any)
	e, _ := res["error"].(map[string]any)
	n, _ := e["name"].(string)
	return n
}

func approvalInput(timeoutMS int, approvers ...string) map[string]any {
	return map[string]any{"block": "human.approval", "input": map[string]any{
		"prompt": "Ship it?", "timeout_ms": timeoutMS, "approvers": approvers}}
}

func executorPool(n int) executor.PoolConfig {
	return executor.PoolConfig{Concurrency: n, QueueSize: 16}
}

func contextWithTimeout(d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), d)
}
