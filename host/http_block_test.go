package host_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/blockhost/blockhost/abi"
	"github.com/blockhost/blockhost/host"
	"github.com/blockhost/blockhost/host/engine"
	"github.com/blockhost/blockhost/host/executor"
	"github.com/blockhost/blockhost/host/httpcap"
	"github.com/blockhost/blockhost/internal/nettest"
	"github.com/blockhost/blockhost/internal/testwasm"
)

// httpBlockOutput is what testdata/httpblock reports.
type httpBlockOutput struct {
	Status    int                 `json:"status"`
	Headers   map[string][]string `json:"headers"`
	Body      string              `json:"body"`
	BodyBytes int                 `json:"body_bytes"`
	Truncated bool                `json:"truncated"`
	Redirects int                 `json:"redirects"`
	Grant     string              `json:"grant"`
	Err       *httpBlockErr       `json:"err"`
	ReadErr   *httpBlockErr       `json:"read_err"`
}

type httpBlockErr struct {
	Is           []string  `json:"is"`
	Code         abi.Code  `json:"code"`
	Class        abi.Class `json:"class"`
	Message      string    `json:"message"`
	RetryAfterMS int64     `json:"retry_after_ms"`
}

func (e *httpBlockErr) is(name string) bool {
	return e != nil && strings.Contains(","+strings.Join(e.Is, ",")+",", ","+name+",")
}

// syncBuffer is a log destination shared by the goroutines of a step.
type syncBuffer struct {
	mu sync.Mutex
	bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.Buffer.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.Buffer.String()
}

// loopbackGrant grants requests to a server on 127.0.0.1, through the
// explicit range every test server is reached by.
func loopbackGrant(t testing.TB, name, rawURL string) httpcap.Grant {
	t.Helper()
	hostPort := strings.TrimPrefix(strings.TrimPrefix(rawURL, "http://"), "https://")
	host, port, err := net.SplitHostPort(hostPort)
	if err != nil {
		t.Fatal(err)
	}
	n, _ := strconv.Atoi(port)
	return httpcap.Grant{Name: name, Scheme: "http", Host: host, Port: uint16(n), Methods: []string{"GET", "POST"},
		AllowRanges: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}}
}

func policy(t testing.TB, grants ...httpcap.Grant) *httpcap.Policy {
	t.Helper()
	p, err := httpcap.NewPolicy(grants...)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

type httpBlockRun struct {
	res  *abi.StepResult
	out  httpBlockOutput
	wall time.Duration
}

func runHTTPBlock(t *testing.T, ctx context.Context, blk *host.Block, in map[string]any, grants host.Grants, lim host.Limits) httpBlockRun {
	t.Helper()
	input, _ := json.Marshal(in)
	start := time.Now()
	res := blk.Run(ctx, host.Step{Input: input, Grants: grants, Limits: lim})
	run := httpBlockRun{res: res, wall: time.Since(start)}
	if len(res.Output) > 0 {
		if err := json.Unmarshal(res.Output, &run.out); err != nil {
			t.Fatalf("output %s: %v", res.Output, err)
		}
	}
	return run
}

// TestHTTPBlock runs the HTTP capability's acceptance cases through a real
// WebAssembly block built with the SDK, on every engine the host has.
func TestHTTPBlock(t *testing.T) {
	wasm := testwasm.Go(t, "testdata/httpblock")
	for _, name := range engine.Names() {
		t.Run(name, func(t *testing.T) {
			logs := &syncBuffer{}
			logger := hclog.New(&hclog.LoggerOptions{Output: logs, JSONFormat: true, Level: hclog.Info})
			rt, err := host.NewRuntime(context.Background(), host.NewRuntimeConfig().WithEngine(name).WithLogger(logger))
			if errors.Is(err, engine.ErrUnavailable) {
				t.Skipf("engine %s: %v", name, err)
			}
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { rt.Close(context.Background()) })
			blk, err := rt.Load(context.Background(), "httpblock", wasm)
			if err != nil {
				t.Fatal(err)
			}
			testHTTPBlock(t, blk, logs)
		})
	}
}

func testHTTPBlock(t *testing.T, blk *host.Block, logs *syncBuffer) {
	mux := http.NewServeMux()
	mux.HandleFunc("/hello", func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("X-Seen", r.Method+" "+r.Header.Get("X-Token")+" "+string(body))
		fmt.Fprint(w, "hello from the server")
	})
	mux.HandleFunc("/status/", func(w http.ResponseWriter, r *http.Request) {
		code, _ := strconv.Atoi(strings.TrimPrefix(r.URL.Path, "/status/"))
		if ra := r.URL.Query().Get("retry_after"); ra != "" {
			w.Header().Set("Retry-After", ra)
		}
		w.WriteHeader(code)
	})
	mux.HandleFunc("/big", func(w http.ResponseWriter, r *http.Request) {
		chunk := bytes.Repeat([]byte("b"), 64<<10)
		for range 160 { // 10 MiB
			if _, err := w.Write(chunk); err != nil {
				return
			}
		}
	})
	mux.HandleFunc("/metadata", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "http://169.254.169.254/latest/meta-data/", http.StatusFound)
	})
	l := nettest.Listen(t)
	srv := &httptest.Server{Listener: l, Config: &http.Server{Handler: mux}}
	srv.Start()
	t.Cleanup(srv.Close)
	grant := loopbackGrant(t, "test-server", srv.URL)
	grant.MaxResponseBody = 1 << 20
	grant.Redirects = 3
	grants := host.Grants{HTTP: policy(t, grant)}
	ctx := context.Background()

	t.Run("200 is success with status, headers and body", func(t *testing.T) {
		r := runHTTPBlock(t, ctx, blk, map[string]any{"method": "POST", "url": srv.URL + "/hello", "body": "ping",
			"headers": map[string][]string{"X-Token": {"abc"}}, "return": true}, grants, host.Limits{})
		if r.res.Status != abi.StatusSuccess {
			t.Fatalf("status %s: %+v", r.res.Status, r.res.Error)
		}
		if r.out.Status != 200 || r.out.Body != "hello from the server" || r.out.Grant != "test-server" ||
			len(r.out.Headers["X-Seen"]) != 1 || r.out.Headers["X-Seen"][0] != "POST abc ping" {
			t.Fatalf("output %+v", r.out)
		}
		if !strings.Contains(logs.String(), `"rule":"test-server"`) || !strings.Contains(logs.String(), `"step_id":"`+r.res.StepID+`"`) {
			t.Errorf("no request record for step %s:\n%s", r.res.StepID, logs)
		}
	})

	t.Run("outside the grants nothing is sent", func(t *testing.T) {
		before := l.Accepted()
		_, port, _ := net.SplitHostPort(l.Addr().String())
		for _, u := range []string{
			"http://localhost:" + port + "/hello",
			"http://127.0.0.2:" + port + "/hello",
			"http://2130706434:" + port + "/hello", // 127.0.0.2
			"http://[::ffff:127.0.0.1]:" + port + "/hello",
			"http://169.254.169.254/latest/meta-data/",
		} {
			r := runHTTPBlock(t, ctx, blk, map[string]any{"url": u}, grants, host.Limits{})
			if r.res.Status != abi.StatusSuccess || !r.out.Err.is("denied") || r.out.Err.Code != abi.CodePermissionDenied ||
				!strings.Contains(r.out.Err.Message, "test-server") {
				t.Errorf("GET %s: %+v %+v; want denied naming the grant", u, r.res.Error, r.out.Err)
			}
		}
		r := runHTTPBlock(t, ctx, blk, map[string]any{"url": "http://localhost:" + port + "/", "return": true}, grants, host.Limits{})
		if r.res.Status != abi.StatusError || r.res.Error.Code != abi.CodePermissionDenied || r.res.Error.Class != abi.ClassPermanent {
			t.Errorf("returned denial ended the step %s %+v; want permission_denied", r.res.Status, r.res.Error)
		}
		if n := l.Accepted() - before; n != 0 {
			t.Errorf("the server accepted %d connections", n)
		}
	})

	t.Run("no grants", func(t *testing.T) {
		r := runHTTPBlock(t, ctx, blk, map[string]any{"url": srv.URL + "/hello"}, host.Grants{}, host.Limits{})
		if !r.out.Err.is("denied") || !strings.Contains(r.out.Err.Message, "no HTTP grants") {
			t.Fatalf("err %+v", r.out.Err)
		}
	})

	t.Run("redirect to metadata", func(t *testing.T) {
		r := runHTTPBlock(t, ctx, blk, map[string]any{"url": srv.URL + "/metadata"}, grants, host.Limits{})
		if !r.out.Err.is("denied") {
			t.Fatalf("err %+v", r.out.Err)
		}
	})

	t.Run("status classes", func(t *testing.T) {
		for _, tc := range []struct {
			path       string
			class      abi.Class
			retryAfter int64
		}{
			{"/status/400", abi.ClassPermanent, 0},
			{"/status/404", abi.ClassPermanent, 0},
			{"/status/503?retry_after=5", abi.ClassRetryable, 5000},
			{"/status/429?retry_after=2", abi.ClassRetryable, 2000},
			{"/status/502", abi.ClassRetryable, 0},
		} {
			r := runHTTPBlock(t, ctx, blk, map[string]any{"url": srv.URL + tc.path, "return": true}, grants, host.Limits{})
			if r.res.Status != abi.StatusError || r.res.Error.Code != abi.CodeHTTPError || r.res.Error.Class != tc.class {
				t.Errorf("%s: %s %+v; want http_error %s", tc.path, r.res.Status, r.res.Error, tc.class)
				continue
			}
			d, ok := r.res.Error.RetryAfter()
			if tc.retryAfter == 0 && ok || tc.retryAfter != 0 && (!ok || d.Milliseconds() != tc.retryAfter) {
				t.Errorf("%s: retry after %s, %v; want %dms", tc.path, d, ok, tc.retryAfter)
			}
		}
	})

	t.Run("10 MiB body against a 1 MiB cap", func(t *testing.T) {
		r := runHTTPBlock(t, ctx, blk, map[string]any{"url": srv.URL + "/big"}, grants, host.Limits{})
		if r.res.Status != abi.StatusSuccess || !r.out.Truncated || r.out.BodyBytes != 1<<20 || !r.out.ReadErr.is("limit") {
			t.Fatalf("%s %+v: truncated %v after %d bytes, %+v", r.res.Status, r.res.Error, r.out.Truncated, r.out.BodyBytes, r.out.ReadErr)
		}
	})

	t.Run("server never answers: step timeout at 300ms", func(t *testing.T) {
		addr := nettest.Silent(t)
		g := host.Grants{HTTP: policy(t, loopbackGrant(t, "silent", "http://"+addr))}
		r := runHTTPBlock(t, ctx, blk, map[string]any{"url": "http://" + addr + "/"}, g, host.Limits{Timeout: 300 * time.Millisecond})
		if r.res.Status != abi.StatusTimeout || r.res.Error.Code != abi.CodeCancelledByTimeout {
			t.Fatalf("%s %+v; want timeout", r.res.Status, r.res.Error)
		}
		if r.wall < 290*time.Millisecond || r.wall > 5*time.Second {
			t.Fatalf("took %s; want about 300ms", r.wall)
		}
	})

	t.Run("handshake never completes: connection_timeout at 200ms", func(t *testing.T) {
		addr := nettest.Blackhole(t)
		g := loopbackGrant(t, "hole", "http://"+addr)
		g.ConnectTimeout = 200 * time.Millisecond
		r := runHTTPBlock(t, ctx, blk, map[string]any{"url": "http://" + addr + "/", "return": true}, host.Grants{HTTP: policy(t, g)}, host.Limits{})
		if r.res.Status != abi.StatusError || r.res.Error.Code != abi.CodeConnectionTimeout || r.res.Error.Class != abi.ClassRetryable {
			t.Fatalf("%s %+v; want connection_timeout, retryable", r.res.Status, r.res.Error)
		}
		if r.wall < 190*time.Millisecond || r.wall > 5*time.Second {
			t.Fatalf("took %s; want about 200ms", r.wall)
		}
	})

	t.Run("cancelled during a request", func(t *testing.T) {
		entered, sawEnd := make(chan struct{}), make(chan struct{})
		hold := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			close(entered)
			<-r.Context().Done()
			close(sawEnd)
		}))
		defer hold.Close()
		ctx, cancel := context.WithCancelCause(context.Background())
		var cancelledAt time.Time
		go func() {
			<-entered
			cancelledAt = time.Now()
			cancel(host.ErrCancelled)
		}()
		r := runHTTPBlock(t, ctx, blk, map[string]any{"url": hold.URL + "/"}, host.Grants{HTTP: policy(t, loopbackGrant(t, "hold", hold.URL))}, host.Limits{})
		after := time.Since(cancelledAt)
		if r.res.Status != abi.StatusCancelled || r.res.Error.Code != abi.CodeCancelledByUser {
			t.Fatalf("%s %+v; want cancelled", r.res.Status, r.res.Error)
		}
		if after > 5*time.Second {
			t.Fatalf("returned %s after the cancellation; want under 100ms", after)
		}
		select {
		case <-sawEnd:
		case <-time.After(time.Second):
			t.Fatal("the server's handler did not see its request end")
		}
	})

	t.Run("a response left open is closed with the step", func(t *testing.T) {
		sawEnd := make(chan struct{})
		stream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(200)
			w.(http.Flusher).Flush()
			<-r.Context().Done()
			close(sawEnd)
		}))
		defer stream.Close()
		r := runHTTPBlock(t, ctx, blk, map[string]any{"url": stream.URL + "/", "leak": true}, host.Grants{HTTP: policy(t, loopbackGrant(t, "stream", stream.URL))}, host.Limits{})
		if r.res.Status != abi.StatusSuccess || r.out.Status != 200 {
			t.Fatalf("%s %+v %+v", r.res.Status, r.res.Error, r.out)
		}
		select {
		case <-sawEnd:
		case <-time.After(time.Second):
			t.Fatal("the response was not closed when the step ended")
		}
	})

	t.Run("an unhealthy origin opens its own circuit breaker", func(t *testing.T) {
		// The requests name no dependency: the executor learns it from
		// the HTTP capability, "http:127.0.0.1:PORT" of the origin.
		healthy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "ok") }))
		defer healthy.Close()
		both := host.Grants{HTTP: policy(t, grant, loopbackGrant(t, "healthy", healthy.URL))}
		e, err := executor.New(executor.NewConfig())
		if err != nil {
			t.Fatal(err)
		}
		defer e.Close(ctx)
		step := func(url string) executor.Request {
			in, _ := json.Marshal(map[string]any{"url": url, "return": true})
			return executor.Request{Runner: blk, Step: host.Step{Input: in, Grants: both}, Retry: executor.RetryPolicy{MaxAttempts: 1}}
		}
		for i := range 5 {
			if res := e.Run(ctx, step(srv.URL+"/status/503")); res.Status != abi.StatusError || res.Error.Code != abi.CodeHTTPError {
				t.Fatalf("step %d: %s %+v", i+1, res.Status, res.Error)
			}
		}
		if res := e.Run(ctx, step(healthy.URL+"/")); res.Status != abi.StatusSuccess {
			t.Fatalf("step on the healthy origin: %s %+v", res.Status, res.Error)
		}
		_, t503, _ := httpcap.ParseURL(srv.URL)
		_, tOK, _ := httpcap.ParseURL(healthy.URL)
		states := e.BreakerStates()
		if states[httpcap.Dependency(t503)] != "open" {
			t.Fatalf("breakers %v: %s is not open after five 503s", states, httpcap.Dependency(t503))
		}
		if states[httpcap.Dependency(tOK)] == "open" {
			t.Errorf("breakers %v: the healthy origin's is open too", states)
		}

		// An origin that refuses connections (a closed loopback port).
		closed := nettest.Listen(t)
		down := "http://" + closed.Addr().String()
		closed.Close()
		both = host.Grants{HTTP: policy(t, loopbackGrant(t, "down", down))}
		for i := range 5 {
			if res := e.Run(ctx, step(down+"/")); res.Status != abi.StatusError || res.Error.Code != abi.CodeNetworkError {
				t.Fatalf("step %d on a closed port: %s %+v", i+1, res.Status, res.Error)
			}
		}
		_, tDown, _ := httpcap.ParseURL(down)
		if s := e.BreakerStates()[httpcap.Dependency(tDown)]; s != "open" {
			t.Errorf("breakers %v: %s is not open after five refused connections", e.BreakerStates(), httpcap.Dependency(tDown))
		}
	})
}
