package httprequest_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/blockhost/blockhost/abi"
	"github.com/blockhost/blockhost/host"
	"github.com/blockhost/blockhost/host/httpcap"
	"github.com/blockhost/blockhost/internal/nettest"
	"github.com/blockhost/blockhost/plugins"
	"github.com/blockhost/blockhost/plugins/httprequest"
)

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

func newBlock(t *testing.T) (host.Runner, *syncBuffer) {
	t.Helper()
	logs := &syncBuffer{}
	logger := hclog.New(&hclog.LoggerOptions{Output: logs, JSONFormat: true, Level: hclog.Info})
	rt, err := host.NewRuntime(context.Background(), host.NewRuntimeConfig().WithLogger(logger))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rt.Close(context.Background()) })
	p, ok := plugins.Lookup(httprequest.Name)
	if !ok {
		t.Fatal("http.request is not registered")
	}
	return rt.Native(p.Name, p.Run), logs
}

func grantFor(t *testing.T, name, rawURL string, edit func(*httpcap.Grant)) host.Grants {
	t.Helper()
	h, port, err := net.SplitHostPort(strings.TrimPrefix(rawURL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	n, _ := strconv.Atoi(port)
	g := httpcap.Grant{Name: name, Scheme: "http", Host: h, Port: uint16(n), Methods: []string{"GET", "POST"},
		AllowRanges: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}}
	if edit != nil {
		edit(&g)
	}
	p, err := httpcap.NewPolicy(g)
	if err != nil {
		t.Fatal(err)
	}
	return host.Grants{HTTP: p}
}

func run(t *testing.T, ctx context.Context, b host.Runner, in any, g host.Grants, lim host.Limits) (*abi.StepResult, httprequest.Output, time.Duration) {
	t.Helper()
	input, ok := in.(string)
	if !ok {
		b, _ := json.Marshal(in)
		input = string(b)
	}
	start := time.Now()
	res := b.Run(ctx, host.Step{Input: []byte(input), Grants: g, Limits: lim})
	wall := time.Since(start)
	var out httprequest.Output
	if len(res.Output) > 0 {
		if err := json.Unmarshal(res.Output, &out); err != nil {
			t.Fatalf("output %s: %v", res.Output, err)
		}
	}
	return res, out, wall
}

func TestHTTPRequest(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("/echo", func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("X-Seen", r.Method+" "+strings.Join(r.Header.Values("X-Multi"), ",")+" "+r.Header.Get("Content-Type"))
		w.Write(body)
	})
	mux.HandleFunc("/status/", func(w http.ResponseWriter, r *http.Request) {
		code, _ := strconv.Atoi(strings.TrimPrefix(r.URL.Path, "/status/"))
		if ra := r.URL.Query().Get("retry_after"); ra != "" {
			w.Header().Set("Retry-After", ra)
		}
		w.WriteHeader(code)
		fmt.Fprintf(w, "status %d", code)
	})
	mux.HandleFunc("/binary", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte{0xff, 0x00, 0xfe}) })
	mux.HandleFunc("/big", func(w http.ResponseWriter, r *http.Request) {
		chunk := bytes.Repeat([]byte("b"), 64<<10)
		for range 160 { // 10 MiB
			if _, err := w.Write(chunk); err != nil {
				return
			}
		}
	})
	l := nettest.Listen(t)
	srv := &httptest.Server{Listener: l, Config: &http.Server{Handler: mux}}
	srv.Start()
	defer srv.Close()
	blk, logs := newBlock(t)
	grants := grantFor(t, "srv", srv.URL, nil)
	ctx := context.Background()

	t.Run("200", func(t *testing.T) {
		res, out, _ := run(t, ctx, blk, map[string]any{
			"method": "POST", "url": srv.URL + "/echo", "body": `{"a":1}`,
			"headers": map[string]any{"Content-Type": "application/json", "X-Multi": []string{"x", "y"}},
		}, grants, host.Limits{})
		if res.Status != abi.StatusSuccess {
			t.Fatalf("%s %+v", res.Status, res.Error)
		}
		if out.Status != 200 || out.Body == nil || *out.Body != `{"a":1}` || out.Headers["X-Seen"][0] != "POST x,y application/json" ||
			out.Grant != "srv" || out.Truncated {
			t.Fatalf("output %+v", out)
		}
		logged := logs.String()
		for _, want := range []string{`"@message":"http request"`, `"step_id":"` + res.StepID + `"`, `"block":"http.request"`,
			`"method":"POST"`, `"host":"127.0.0.1"`, `"rule":"srv"`, `"status":200`, `"bytes":7`} {
			if !strings.Contains(logged, want) {
				t.Errorf("log lacks %s:\n%s", want, logged)
			}
		}
	})

	t.Run("binary body", func(t *testing.T) {
		res, out, _ := run(t, ctx, blk, map[string]any{"url": srv.URL + "/binary"}, grants, host.Limits{})
		if res.Status != abi.StatusSuccess || out.Body != nil || !bytes.Equal(out.BodyBase64, []byte{0xff, 0, 0xfe}) {
			t.Fatalf("%s %+v", res.Status, out)
		}
	})

	t.Run("status classes", func(t *testing.T) {
		for _, tc := range []struct {
			path       string
			class      abi.Class
			retryAfter time.Duration
		}{
			{"/status/400", abi.ClassPermanent, -1},
			{"/status/501", abi.ClassPermanent, -1},
			{"/status/503?retry_after=6", abi.ClassRetryable, 6 * time.Second},
			{"/status/429?retry_after=1", abi.ClassRetryable, time.Second},
			{"/status/504", abi.ClassRetryable, -1},
			{"/status/408", abi.ClassRetryable, -1},
		} {
			res, out, _ := run(t, ctx, blk, map[string]any{"url": srv.URL + tc.path}, grants, host.Limits{})
			if res.Status != abi.StatusError || res.Error.Code != abi.CodeHTTPError || res.Error.Class != tc.class {
				t.Errorf("%s: %s %+v; want http_error %s", tc.path, res.Status, res.Error, tc.class)
				continue
			}
			if out.Status == 0 || out.Body == nil || !strings.HasPrefix(*out.Body, "status ") {
				t.Errorf("%s: the output is lost: %+v", tc.path, out)
			}
			d, ok := res.Error.RetryAfter()
			if tc.retryAfter < 0 && ok || tc.retryAfter >= 0 && (!ok || d != tc.retryAfter) {
				t.Errorf("%s: retry after %s, %v; want %s", tc.path, d, ok, tc.retryAfter)
			}
		}
	})

	t.Run("outside the grants nothing is sent", func(t *testing.T) {
		before := l.Accepted()
		_, port, _ := net.SplitHostPort(l.Addr().String())
		for _, in := range []map[string]any{
			{"url": "http://localhost:" + port + "/echo"},
			{"url": "http://169.254.169.254/latest/meta-data/"},
			{"url": "http://0x7f.0.0.2:" + port + "/echo"},
			{"method": "DELETE", "url": srv.URL + "/echo"},
			{"url": "http://user@127.0.0.1:" + port + "/echo"},
		} {
			res, _, _ := run(t, ctx, blk, in, grants, host.Limits{})
			if res.Status != abi.StatusError || res.Error.Code != abi.CodePermissionDenied || res.Error.Class != abi.ClassPermanent {
				t.Errorf("%v: %s %+v; want permission_denied", in, res.Status, res.Error)
			}
		}
		res, _, _ := run(t, ctx, blk, map[string]any{"url": srv.URL + "/echo"}, host.Grants{}, host.Limits{})
		if res.Error == nil || res.Error.Code != abi.CodePermissionDenied || !strings.Contains(res.Error.Message, "no HTTP grants") {
			t.Errorf("no grants: %+v", res.Error)
		}
		if n := l.Accepted() - before; n != 0 {
			t.Errorf("the server accepted %d connections", n)
		}
		if !strings.Contains(logs.String(), `"@message":"http request denied"`) {
			t.Errorf("no denial in the log")
		}
	})

	t.Run("bad input", func(t *testing.T) {
		for in, code := range map[string]abi.Code{
			`not json`:         abi.CodeInvalidInput,
			`{"method":"GET"}`: abi.CodeMissingRequiredField,
			`{"url":"x","body":"a","body_base64":"YQ=="}`: abi.CodeInvalidInput,
			`{"url":"x","timeouts":{"total":"soon"}}`:     abi.CodeInvalidInput,
			`{"url":"x","unknown":1}`:                     abi.CodeInvalidInput,
			`{"url":"ftp://127.0.0.1/"}`:                  abi.CodeInvalidInput,
		} {
			res, _, _ := run(t, ctx, blk, in, grants, host.Limits{})
			if res.Status != abi.StatusError || res.Error.Code != code {
				t.Errorf("%s: %s %+v; want %s", in, res.Status, res.Error, code)
			}
		}
	})

	t.Run("10 MiB against a 1 MiB cap", func(t *testing.T) {
		g := grantFor(t, "srv", srv.URL, func(g *httpcap.Grant) { g.MaxResponseBody = 1 << 20 })
		input := []byte(`{"url":"` + srv.URL + `/big"}`)
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		res := blk.Run(ctx, host.Step{Input: input, Grants: g, Limits: host.Limits{Output: 4 << 20}})
		runtime.ReadMemStats(&after)
		var out httprequest.Output
		if err := json.Unmarshal(res.Output, &out); err != nil {
			t.Fatal(err)
		}
		if res.Status != abi.StatusSuccess || !out.Truncated || out.Body == nil || len(*out.Body) != 1<<20 {
			t.Fatalf("%s %+v truncated %v", res.Status, res.Error, out.Truncated)
		}
		if grew := after.TotalAlloc - before.TotalAlloc; grew >= 10<<20 {
			t.Errorf("allocated %d bytes for a body capped at 1 MiB", grew)
		}
	})

	t.Run("the output limit caps the body too", func(t *testing.T) {
		res, out, _ := run(t, ctx, blk, map[string]any{"url": srv.URL + "/big"}, grants, host.Limits{Output: 64 << 10})
		if res.Status != abi.StatusSuccess || !out.Truncated || len(*out.Body) != 32<<10 {
			t.Fatalf("%s %+v truncated %v", res.Status, res.Error, out.Truncated)
		}
	})
}

func TestHTTPRequest_timeouts(t *testing.T) {
	blk, _ := newBlock(t)
	t.Run("server never answers: step timeout at 300ms", func(t *testing.T) {
		addr := nettest.Silent(t)
		res, _, wall := run(t, context.Background(), blk, map[string]any{"url": "http://" + addr + "/"},
			grantFor(t, "silent", "http://"+addr, nil), host.Limits{Timeout: 300 * time.Millisecond})
		if res.Status != abi.StatusTimeout || res.Error.Code != abi.CodeCancelledByTimeout {
			t.Fatalf("%s %+v; want timeout", res.Status, res.Error)
		}
		if wall < 290*time.Millisecond || wall > 5*time.Second {
			t.Fatalf("took %s; want about 300ms", wall)
		}
	})
	t.Run("handshake never completes: connection_timeout at 200ms", func(t *testing.T) {
		addr := nettest.Blackhole(t)
		res, _, wall := run(t, context.Background(), blk, map[string]any{"url": "http://" + addr + "/"},
			grantFor(t, "hole", "http://"+addr, func(g *httpcap.Grant) { g.ConnectTimeout = 200 * time.Millisecond }), host.Limits{})
		if res.Status != abi.StatusError || res.Error.Code != abi.CodeConnectionTimeout || res.Error.Class != abi.ClassRetryable {
			t.Fatalf("%s %+v; want connection_timeout, retryable", res.Status, res.Error)
		}
		if wall < 190*time.Millisecond || wall > 5*time.Second {
			t.Fatalf("took %s; want about 200ms", wall)
		}
	})
	t.Run("a shorter timeout in the input", func(t *testing.T) {
		addr := nettest.Blackhole(t)
		res, _, wall := run(t, context.Background(), blk, map[string]any{"url": "http://" + addr + "/", "timeouts": map[string]any{"connect": 100}},
			grantFor(t, "hole", "http://"+addr, nil), host.Limits{})
		if res.Error == nil || res.Error.Code != abi.CodeConnectionTimeout || wall > 5*time.Second {
			t.Fatalf("%+v after %s", res.Error, wall)
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
		res, _, _ := run(t, ctx, blk, map[string]any{"url": hold.URL + "/"}, grantFor(t, "hold", hold.URL, nil), host.Limits{})
		if after := time.Since(cancelledAt); res.Status != abi.StatusCancelled || after > 5*time.Second {
			t.Fatalf("%s %+v %s after the cancellation; want cancelled within 100ms", res.Status, res.Error, after)
		}
		select {
		case <-sawEnd:
		case <-time.After(time.Second):
			t.Fatal("the server's handler did not see its request end")
		}
	})
}
