package httpcap

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/blockhost/blockhost/abi"
	"github.com/blockhost/blockhost/internal/nettest"
)

// fakeResolver answers from a table and fails every other name, so no
// test asks real DNS.
type fakeResolver map[string][]string

func (f fakeResolver) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	addrs, ok := f[host]
	if !ok {
		return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
	}
	out := make([]netip.Addr, len(addrs))
	for i, a := range addrs {
		out[i] = netip.MustParseAddr(a)
	}
	return out, nil
}

// guardedDial records every address the session asks to dial and
// connects only to loopback: whatever the filter under test decides, no
// test opens a socket to anything else.
type guardedDial struct {
	mu       sync.Mutex
	attempts []string
}

var errNotLoopback = errors.New("test dialer: refusing a non-loopback address")

func (g *guardedDial) dial(ctx context.Context, network, addr string, control controlFunc) (net.Conn, error) {
	g.mu.Lock()
	g.attempts = append(g.attempts, addr)
	g.mu.Unlock()
	ap, err := netip.ParseAddrPort(addr)
	if err != nil || !ap.Addr().Unmap().IsLoopback() {
		return nil, errNotLoopback
	}
	return netDial(ctx, network, addr, control)
}

func (g *guardedDial) dialled() []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]string(nil), g.attempts...)
}

type testSession struct {
	*Session
	dial *guardedDial
	logs *bytes.Buffer
}

func newTestSession(t testing.TB, ctx context.Context, res fakeResolver, grants ...Grant) *testSession {
	t.Helper()
	logs := &syncBuffer{}
	g := &guardedDial{}
	s := NewSession(ctx, mustPolicy(t, grants...), SessionConfig{
		Logger:   hclog.New(&hclog.LoggerOptions{Output: logs, JSONFormat: true, Level: hclog.Trace}).With("step_id", "step-1"),
		resolver: res,
		dial:     g.dial,
	})
	t.Cleanup(s.Close)
	return &testSession{Session: s, dial: g, logs: &logs.Buffer}
}

type syncBuffer struct {
	mu sync.Mutex
	bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.Buffer.Write(p)
}

// serverGrant is a grant for an httptest server on 127.0.0.1, reached
// through an explicit range as every test reaches its servers.
func serverGrant(t testing.TB, name, rawURL string) Grant {
	t.Helper()
	host, port, err := net.SplitHostPort(strings.TrimPrefix(strings.TrimPrefix(rawURL, "http://"), "https://"))
	if err != nil {
		t.Fatal(err)
	}
	n, _ := strconv.Atoi(port)
	scheme := "http"
	if strings.HasPrefix(rawURL, "https://") {
		scheme = "https"
	}
	return Grant{Name: name, Scheme: scheme, Host: host, Port: uint16(n), Methods: []string{"GET", "POST", "HEAD"},
		AllowRanges: prefixes("127.0.0.1/32")}
}

func do(t testing.TB, s *testSession, req *Request) (*Response, error) {
	t.Helper()
	return s.Do(context.Background(), req)
}

func readAll(t testing.TB, resp *Response) ([]byte, error) {
	t.Helper()
	defer resp.Body.Close()
	return io.ReadAll(resp.Body)
}

// TestSession_outsideGrants: a request no grant allows sends no packet —
// the server accepts no connection — and the error names the grants.
func TestSession_outsideGrants(t *testing.T) {
	l := nettest.Listen(t)
	srv := &httptest.Server{Listener: l, Config: &http.Server{Handler: http.NotFoundHandler()}}
	srv.Start()
	defer srv.Close()
	ts := newTestSession(t, context.Background(), nil, serverGrant(t, "srv", srv.URL))
	_, port, _ := net.SplitHostPort(l.Addr().String())

	for _, tc := range []struct{ method, url string }{
		{"GET", "http://127.0.0.2:" + port + "/"},                  // another loopback address
		{"GET", "http://localhost:" + port + "/"},                  // a name for the same server
		{"DELETE", srv.URL + "/"},                                  // a method the grant lacks
		{"GET", "https://127.0.0.1:" + port + "/"},                 // another scheme
		{"GET", "http://evil@127.0.0.1:" + port + "/"},             // userinfo
		{"GET", "http://[::ffff:127.0.0.1]:" + port + "/"},         // the same address, mapped
		{"GET", "http://169.254.169.254:" + port + "/latest/meta"}, // metadata
	} {
		_, err := do(t, ts, &Request{Method: tc.method, URL: tc.url})
		var e *Error
		if !errors.Is(err, ErrDenied) || !errors.As(err, &e) || e.Code() != abi.CodePermissionDenied || e.Result() != abi.ResultDenied {
			t.Errorf("%s %s = %v; want permission_denied", tc.method, tc.url, err)
			continue
		}
		if !strings.Contains(err.Error(), "grants: srv:") && !strings.Contains(err.Error(), "userinfo") {
			t.Errorf("%s %s: denial %q does not name the grants", tc.method, tc.url, err)
		}
	}
	if n := l.Accepted(); n != 0 {
		t.Errorf("server accepted %d connections; want none", n)
	}
	if d := ts.dial.dialled(); len(d) != 0 {
		t.Errorf("dialled %v; want nothing", d)
	}
	// The grant itself works.
	resp, err := do(t, ts, &Request{URL: srv.URL + "/"})
	if err != nil {
		t.Fatal(err)
	}
	readAll(t, resp)
	if l.Accepted() != 1 {
		t.Errorf("server accepted %d connections for the allowed request", l.Accepted())
	}
}

// TestSession_dnsVectors: names that resolve to denied addresses are
// refused after resolution and before any dial.
func TestSession_dnsVectors(t *testing.T) {
	res := fakeResolver{
		"rebind.test":    {"127.0.0.1"},
		"meta.test":      {"169.254.169.254"},
		"mixed.test":     {"93.184.216.34", "10.0.0.1"},
		"mapped.test":    {"::ffff:127.0.0.1"},
		"v6local.test":   {"::1"},
		"private.test":   {"192.168.0.10"},
		"ula.test":       {"fd00::10"},
		"cgnat.test":     {"100.64.1.1"},
		"unspec.test":    {"0.0.0.0"},
		"nat64.test":     {"64:ff9b::7f00:1"},
		"linklocal.test": {"fe80::1"},
	}
	var grants []Grant
	for name := range res {
		grants = append(grants, Grant{Name: strings.TrimSuffix(name, ".test"), Scheme: "http", Host: name})
	}
	ts := newTestSession(t, context.Background(), res, grants...)
	for name, addrs := range res {
		t.Run(name, func(t *testing.T) {
			_, err := do(t, ts, &Request{URL: "http://" + name + "/"})
			var e *Error
			if !errors.Is(err, ErrDenied) || !errors.As(err, &e) || e.Range == "" {
				t.Fatalf("GET http://%s/ (resolving to %v) = %v; want denied naming a range", name, addrs, err)
			}
			if !strings.Contains(err.Error(), name+" resolves to") {
				t.Errorf("denial %q does not say what the name resolved to", err)
			}
		})
	}
	if d := ts.dial.dialled(); len(d) != 0 {
		t.Errorf("dialled %v; want nothing", d)
	}
}

// TestSession_resolverIPv4In16: a resolver's IPv4 answer in 16-byte form,
// as Go's resolver gives it for a hosts-file entry, is an IPv4 address: a
// grant's IPv4 range applies to it.
func TestSession_resolverIPv4In16(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "ok") }))
	defer srv.Close()
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(srv.URL, "http://"))
	n, _ := strconv.Atoi(port)
	ts := newTestSession(t, context.Background(), fakeResolver{"hosts.test": {"::ffff:127.0.0.1"}},
		Grant{Name: "hosts", Scheme: "http", Host: "hosts.test", Port: uint16(n), AllowRanges: prefixes("127.0.0.1/32")})
	resp, err := do(t, ts, &Request{URL: "http://hosts.test:" + port + "/"})
	if err != nil {
		t.Fatal(err)
	}
	if body, _ := readAll(t, resp); string(body) != "ok" {
		t.Fatalf("body %q", body)
	}
	if d := ts.dial.dialled(); len(d) != 1 || d[0] != "127.0.0.1:"+port {
		t.Fatalf("dialled %v", d)
	}
}

// TestSession_dialsTheCheckedAddress: the address dialled is the address
// resolved and checked, with no second resolution.
func TestSession_dialsTheCheckedAddress(t *testing.T) {
	var lookups atomic.Int64
	res := countingResolver{fakeResolver{"public.test": {"93.184.216.34"}}, &lookups}
	g := &guardedDial{}
	s := NewSession(context.Background(), mustPolicy(t, Grant{Name: "pub", Scheme: "http", Host: "public.test", Port: 8080}),
		SessionConfig{resolver: res, dial: g.dial})
	defer s.Close()
	_, err := s.Do(context.Background(), &Request{URL: "http://public.test:8080/"})
	if !errors.Is(err, ErrNetwork) || !errors.Is(err, errNotLoopback) {
		t.Fatalf("err = %v; want the test dialer's refusal as a network error", err)
	}
	if d := g.dialled(); len(d) != 1 || d[0] != "93.184.216.34:8080" {
		t.Fatalf("dialled %v; want exactly the resolved address", d)
	}
	if lookups.Load() != 1 {
		t.Fatalf("resolved %d times; want once", lookups.Load())
	}
}

type countingResolver struct {
	fakeResolver
	n *atomic.Int64
}

func (c countingResolver) LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error) {
	c.n.Add(1)
	return c.fakeResolver.LookupNetIP(ctx, network, host)
}

// TestDialer_controlChecksTheSocketAddress tests the connect-time check
// on its own: it refuses what the grant does not reach.
func TestDialer_controlChecksTheSocketAddress(t *testing.T) {
	p := mustPolicy(t, Grant{Name: "g", Scheme: "http", Host: "svc.test", AllowRanges: prefixes("127.0.0.0/8")})
	d := dialer{r: p.rules[0]}
	for addr, want := range map[string]bool{
		"127.0.0.1:80":          true,
		"93.184.216.34:443":     true,
		"169.254.169.254:80":    false,
		"10.0.0.1:80":           false,
		"[::1]:80":              false,
		"[::ffff:10.0.0.1]:80":  false,
		"[fe80::1%eth0]:80":     false,
		"not an address":        false,
		"[2606:4700::1111]:443": true,
	} {
		err := d.control(context.Background(), "tcp", addr, nil)
		if (err == nil) != want {
			t.Errorf("control(%s) = %v; want allowed %v", addr, err, want)
		}
		if err != nil && !errors.Is(err, ErrDenied) {
			t.Errorf("control(%s) = %v; want ErrDenied", addr, err)
		}
	}
}

// TestSession_redirects covers each redirect rule with a real loopback
// server.
func TestSession_redirects(t *testing.T) {
	var hops atomic.Int64
	mux := http.NewServeMux()
	mux.HandleFunc("/to", func(w http.ResponseWriter, r *http.Request) {
		hops.Add(1)
		http.Redirect(w, r, r.URL.Query().Get("u"), http.StatusFound)
	})
	mux.HandleFunc("/loop", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/loop", http.StatusFound)
	})
	mux.HandleFunc("/chain/", func(w http.ResponseWriter, r *http.Request) {
		n, _ := strconv.Atoi(strings.TrimPrefix(r.URL.Path, "/chain/"))
		http.Redirect(w, r, fmt.Sprintf("/chain/%d", n+1), http.StatusFound)
	})
	mux.HandleFunc("/ok", func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "landed") })
	srv := httptest.NewServer(mux)
	defer srv.Close()
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(srv.URL, "http://"))

	follow := serverGrant(t, "srv", srv.URL)
	follow.Redirects = 3
	res := fakeResolver{"meta.test": {"169.254.169.254"}}
	metaGrant := Grant{Name: "meta", Scheme: "http", Host: "meta.test", Port: follow.Port}

	tests := []struct {
		name      string
		redirects int
		path      string
		status    int
		kind      error
		body      string
	}{
		{"not followed without a grant for it", 0, "/to?u=/ok", http.StatusFound, nil, ""},
		{"followed", 3, "/to?u=/ok", 200, nil, "landed"},
		{"to metadata", 3, "/to?u=http://169.254.169.254/latest/meta-data/", 0, ErrDenied, ""},
		{"to metadata, mapped", 3, "/to?u=http://[::ffff:169.254.169.254]:" + port + "/", 0, ErrDenied, ""},
		{"to metadata, decimal", 3, "/to?u=http://2852039166:" + port + "/", 0, ErrDenied, ""},
		{"to a granted name resolving to metadata", 3, "/to?u=http://meta.test:" + port + "/", 0, ErrDenied, ""},
		{"to a host outside the grants", 3, "/to?u=http://localhost:" + port + "/ok", 0, ErrDenied, ""},
		{"to another scheme", 3, "/to?u=https://127.0.0.1:" + port + "/ok", 0, ErrDenied, ""},
		{"loop", 3, "/loop", 0, ErrRedirect, ""},
		{"too many", 3, "/chain/0", 0, ErrRedirect, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			g := follow
			g.Redirects = tc.redirects
			ts := newTestSession(t, context.Background(), res, g, metaGrant)
			resp, err := do(t, ts, &Request{URL: srv.URL + tc.path})
			if tc.kind != nil {
				if !errors.Is(err, tc.kind) {
					t.Fatalf("err = %v; want %v", err, tc.kind)
				}
				for _, a := range ts.dial.dialled() {
					if !strings.HasPrefix(a, "127.0.0.1:") {
						t.Errorf("dialled %s", a)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			body, _ := readAll(t, resp)
			if resp.StatusCode != tc.status || tc.status == 200 && string(body) != tc.body {
				t.Fatalf("status %d body %q; want %d %q", resp.StatusCode, body, tc.status, tc.body)
			}
			if tc.status == 200 && (resp.Redirects != 1 || !strings.HasSuffix(resp.URL, "/ok")) {
				t.Errorf("redirects %d url %s", resp.Redirects, resp.URL)
			}
			if tc.status == http.StatusFound && resp.Header.Get("Location") != "/ok" {
				t.Errorf("Location %q", resp.Header.Get("Location"))
			}
		})
	}
}

// TestSession_statusClasses: a response of any status is a response; its
// error, when it has one, has the class the retry layer needs.
func TestSession_statusClasses(t *testing.T) {
	date := time.Now().Add(90 * time.Second).UTC().Format(http.TimeFormat)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		code, _ := strconv.Atoi(r.URL.Query().Get("code"))
		if ra := r.URL.Query().Get("ra"); ra != "" {
			w.Header().Set("Retry-After", ra)
		}
		w.Header().Set("X-Test", "yes")
		w.WriteHeader(code)
		fmt.Fprintf(w, "status %d", code)
	}))
	defer srv.Close()
	ts := newTestSession(t, context.Background(), nil, serverGrant(t, "srv", srv.URL))
	tests := []struct {
		code       int
		ra         string
		class      abi.Class
		retryAfter time.Duration // -1: none
	}{
		{200, "", 0, -1},
		{204, "", 0, -1},
		{400, "", abi.ClassPermanent, -1},
		{401, "", abi.ClassPermanent, -1},
		{404, "", abi.ClassPermanent, -1},
		{408, "", abi.ClassRetryable, -1},
		{429, "7", abi.ClassRetryable, 7 * time.Second},
		{429, "", abi.ClassRetryable, -1},
		{500, "", abi.ClassRetryable, -1},
		{501, "", abi.ClassPermanent, -1},
		{502, "", abi.ClassRetryable, -1},
		{503, "120", abi.ClassRetryable, 120 * time.Second},
		{503, date, abi.ClassRetryable, 90 * time.Second},
		{503, "soon", abi.ClassRetryable, -1},
		{504, "", abi.ClassRetryable, -1},
		{500, "30", abi.ClassRetryable, -1}, // only 429 and 503 carry it
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("%d %s", tc.code, tc.ra), func(t *testing.T) {
			resp, err := do(t, ts, &Request{URL: srv.URL + "/?code=" + strconv.Itoa(tc.code) + "&ra=" + strings.ReplaceAll(tc.ra, " ", "+")})
			if err != nil {
				t.Fatal(err)
			}
			body, err := readAll(t, resp)
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != tc.code || resp.Header.Get("X-Test") != "yes" || (tc.code != 204 && string(body) != fmt.Sprintf("status %d", tc.code)) {
				t.Fatalf("status %d headers %v body %q", resp.StatusCode, resp.Header, body)
			}
			e := resp.Err()
			if tc.code < 400 {
				if e != nil {
					t.Fatalf("Err() = %v for %d", e, tc.code)
				}
				return
			}
			if e == nil || e.Code != abi.CodeHTTPError || e.Class != tc.class {
				t.Fatalf("Err() = %+v; want http_error %s", e, tc.class)
			}
			d, ok := e.RetryAfter()
			switch {
			case tc.retryAfter < 0 && ok:
				t.Errorf("retry after %s; want none", d)
			case tc.retryAfter >= 0 && (!ok || d < tc.retryAfter-3*time.Second || d > tc.retryAfter):
				t.Errorf("retry after %s, %v; want about %s", d, ok, tc.retryAfter)
			}
			if last, ok := ts.LastRetryAfter(); ok != (tc.retryAfter >= 0) || ok && (last-d).Abs() > time.Second {
				t.Errorf("LastRetryAfter = %s, %v", last, ok)
			}
		})
	}
}

// TestSession_connectTimeout: a dial to an address that never completes
// the handshake ends with connection_timeout at the connect timeout.
func TestSession_connectTimeout(t *testing.T) {
	addr := nettest.Blackhole(t)
	g := serverGrant(t, "hole", "http://"+addr)
	g.ConnectTimeout = 200 * time.Millisecond
	ts := newTestSession(t, context.Background(), nil, g)
	start := time.Now()
	_, err := do(t, ts, &Request{URL: "http://" + addr + "/"})
	elapsed := time.Since(start)
	var e *Error
	if !errors.Is(err, ErrConnectTimeout) || !errors.As(err, &e) || e.Code() != abi.CodeConnectionTimeout || e.Class() != abi.ClassRetryable {
		t.Fatalf("err = %v; want connection_timeout, retryable", err)
	}
	if elapsed < 190*time.Millisecond || elapsed > 5*time.Second {
		t.Fatalf("took %s; want about 200ms", elapsed)
	}
	// A request may shorten the grant's connect timeout, never lengthen it.
	start = time.Now()
	_, err = do(t, ts, &Request{URL: "http://" + addr + "/", Timeouts: Timeouts{Connect: 100 * time.Millisecond}})
	if elapsed := time.Since(start); !errors.Is(err, ErrConnectTimeout) || elapsed >= 5*time.Second {
		t.Fatalf("shortened: %v after %s", err, elapsed)
	}
	start = time.Now()
	_, err = do(t, ts, &Request{URL: "http://" + addr + "/", Timeouts: Timeouts{Connect: time.Hour}})
	if elapsed := time.Since(start); !errors.Is(err, ErrConnectTimeout) || elapsed > 5*time.Second {
		t.Fatalf("lengthened: %v after %s", err, elapsed)
	}
}

// TestSession_stepDeadline: a server that accepts and never answers, in a
// step with a 300 ms deadline: the request ends with the step at about
// 300 ms, as the step's end, not as one of the request's own timeouts.
func TestSession_stepDeadline(t *testing.T) {
	addr := nettest.Silent(t)
	errStep := errors.New("step timeout")
	ctx, cancel := context.WithTimeoutCause(context.Background(), 300*time.Millisecond, errStep)
	defer cancel()
	ts := newTestSession(t, ctx, nil, serverGrant(t, "silent", "http://"+addr))
	start := time.Now()
	_, err := ts.Do(ctx, &Request{URL: "http://" + addr + "/"})
	elapsed := time.Since(start)
	if !errors.Is(err, ErrStepEnded) || !errors.Is(err, errStep) {
		t.Fatalf("err = %v; want the step's end with its cause", err)
	}
	if elapsed < 290*time.Millisecond || elapsed > 5*time.Second {
		t.Fatalf("took %s; want about 300ms", elapsed)
	}
}

// TestSession_requestTimeouts: the grant's header and total timeouts end a
// request on their own, as a retryable network error.
func TestSession_requestTimeouts(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slowbody" {
			w.WriteHeader(200)
			w.Write([]byte("partial"))
			w.(http.Flusher).Flush()
		}
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()

	g := serverGrant(t, "srv", srv.URL)
	g.HeaderTimeout = 200 * time.Millisecond
	ts := newTestSession(t, context.Background(), nil, g)
	start := time.Now()
	_, err := do(t, ts, &Request{URL: srv.URL + "/slowheaders"})
	if elapsed := time.Since(start); !errors.Is(err, ErrNetwork) || !strings.Contains(err.Error(), "header timeout") || elapsed > 5*time.Second {
		t.Fatalf("header timeout: %v after %s", err, elapsed)
	}

	g.HeaderTimeout, g.TotalTimeout = 0, 300*time.Millisecond
	ts = newTestSession(t, context.Background(), nil, g)
	start = time.Now()
	resp, err := do(t, ts, &Request{URL: srv.URL + "/slowbody"})
	if err != nil {
		t.Fatal(err)
	}
	body, err := readAll(t, resp)
	elapsed := time.Since(start)
	if string(body) != "partial" || !errors.Is(err, ErrNetwork) || !strings.Contains(err.Error(), "total timeout") {
		t.Fatalf("total timeout: body %q err %v", body, err)
	}
	if elapsed < 290*time.Millisecond || elapsed > 5*time.Second {
		t.Fatalf("total timeout after %s; want about 300ms", elapsed)
	}
}

// TestSession_cancel: cancelling the step during a request the server
// holds open returns at once, and the server sees its request end.
func TestSession_cancel(t *testing.T) {
	entered, serverSawEnd := make(chan struct{}), make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(entered)
		<-r.Context().Done()
		close(serverSawEnd)
	}))
	defer srv.Close()
	errCancel := errors.New("operator pressed stop")
	ctx, cancel := context.WithCancelCause(context.Background())
	ts := newTestSession(t, ctx, nil, serverGrant(t, "srv", srv.URL))
	var cancelledAt time.Time
	go func() {
		<-entered
		cancelledAt = time.Now()
		cancel(errCancel)
	}()
	_, err := ts.Do(ctx, &Request{URL: srv.URL + "/hold"})
	returned := time.Since(cancelledAt)
	if !errors.Is(err, ErrStepEnded) || !errors.Is(err, errCancel) {
		t.Fatalf("err = %v; want the step's end with its cause", err)
	}
	if returned > 5*time.Second {
		t.Fatalf("returned %s after the cancellation; want under 100ms", returned)
	}
	select {
	case <-serverSawEnd:
	case <-time.After(time.Second):
		t.Fatal("the server's handler did not see its request end")
	}
}

// TestSession_bodyCap: a 10 MiB response against a 1 MiB cap stops at the
// cap, says so, and reads no more than one byte past it: the process's
// allocations stay far below 10 MiB.
func TestSession_bodyCap(t *testing.T) {
	const total, limit = 10 << 20, 1 << 20
	var written atomic.Int64
	chunk := bytes.Repeat([]byte("x"), 32<<10)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", strconv.Itoa(total))
		for written.Load() < total {
			n, err := w.Write(chunk)
			written.Add(int64(n))
			if err != nil {
				return
			}
		}
	}))
	defer srv.Close()
	g := serverGrant(t, "srv", srv.URL)
	g.MaxResponseBody = limit
	ts := newTestSession(t, context.Background(), nil, g)

	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	resp, err := do(t, ts, &Request{URL: srv.URL + "/big"})
	if err != nil {
		t.Fatal(err)
	}
	if resp.BodyLimit != limit || resp.ContentLength != total {
		t.Fatalf("limit %d length %d", resp.BodyLimit, resp.ContentLength)
	}
	buf := make([]byte, 64<<10)
	var n int64
	for {
		k, err := resp.Body.Read(buf)
		n += int64(k)
		if err != nil {
			var e *Error
			if !errors.Is(err, ErrTruncated) || !errors.As(err, &e) || e.Result() != abi.ResultLimit || e.Code() != abi.CodeQuotaExceeded {
				t.Fatalf("read error %v; want truncated", err)
			}
			break
		}
	}
	resp.Body.Close()
	runtime.ReadMemStats(&after)
	if n != limit || !resp.Body.Truncated() {
		t.Fatalf("read %d bytes, truncated %v; want %d, true", n, resp.Body.Truncated(), limit)
	}
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 4<<20 {
		t.Errorf("allocated %d bytes reading a capped 10 MiB body; want under 4 MiB", grew)
	}
	// The server's last writes fail once the connection is closed.
	deadline := time.Now().Add(2 * time.Second)
	for time.Now().Before(deadline) && written.Load() >= total {
		time.Sleep(10 * time.Millisecond)
	}
	if w := written.Load(); w >= total {
		t.Errorf("server wrote all %d bytes; the client read past its cap", w)
	}
	if !strings.Contains(ts.logs.String(), `"truncated":true`) {
		t.Errorf("log does not record the truncation:\n%s", ts.logs)
	}
}

// TestSession_limits: request body, request headers, response headers
// and requests in flight are capped per grant.
func TestSession_limits(t *testing.T) {
	l := nettest.Listen(t)
	srv := &httptest.Server{Listener: l, Config: &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/bighead" {
			w.Header().Set("X-Big", strings.Repeat("h", 16<<10))
		}
		io.Copy(io.Discard, r.Body)
		fmt.Fprint(w, "ok")
	})}}
	srv.Start()
	defer srv.Close()
	g := serverGrant(t, "srv", srv.URL)
	g.MaxRequestBody, g.MaxHeaderBytes, g.MaxConcurrent = 1024, 4096, 2
	ts := newTestSession(t, context.Background(), nil, g)

	_, err := do(t, ts, &Request{Method: "POST", URL: srv.URL + "/", Body: make([]byte, 1025)})
	if !errors.Is(err, ErrLimit) {
		t.Fatalf("body over the cap: %v", err)
	}
	_, err = do(t, ts, &Request{URL: srv.URL + "/", Header: http.Header{"X-Big": {strings.Repeat("v", 4096)}}})
	if !errors.Is(err, ErrLimit) {
		t.Fatalf("headers over the cap: %v", err)
	}
	if l.Accepted() != 0 {
		t.Fatalf("requests over their caps reached the server")
	}
	resp, err := do(t, ts, &Request{Method: "POST", URL: srv.URL + "/", Body: make([]byte, 1024)})
	if err != nil {
		t.Fatalf("body at the cap: %v", err)
	}
	readAll(t, resp)

	_, err = do(t, ts, &Request{URL: srv.URL + "/bighead"})
	if !errors.Is(err, ErrLimit) {
		t.Fatalf("response headers over the cap: %v", err)
	}

	r1, err1 := do(t, ts, &Request{URL: srv.URL + "/1"})
	r2, err2 := do(t, ts, &Request{URL: srv.URL + "/2"})
	if err1 != nil || err2 != nil {
		t.Fatal(err1, err2)
	}
	if _, err := do(t, ts, &Request{URL: srv.URL + "/3"}); !errors.Is(err, ErrLimit) {
		t.Fatalf("third request in flight: %v; want limit", err)
	}
	r1.Body.Close()
	r3, err := do(t, ts, &Request{URL: srv.URL + "/3"})
	if err != nil {
		t.Fatalf("after closing one: %v", err)
	}
	r2.Body.Close()
	r3.Body.Close()
}

func TestSession_badRequests(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	defer srv.Close()
	ts := newTestSession(t, context.Background(), nil, serverGrant(t, "srv", srv.URL))
	for name, req := range map[string]*Request{
		"Host header":         {URL: srv.URL, Header: http.Header{"Host": {"evil"}}},
		"Transfer-Encoding":   {URL: srv.URL, Header: http.Header{"transfer-encoding": {"chunked"}}},
		"Proxy-Authorization": {URL: srv.URL, Header: http.Header{"Proxy-Authorization": {"x"}}},
		"CRLF in a value":     {URL: srv.URL, Header: http.Header{"X-A": {"a\r\nInjected: 1"}}},
		"bad header name":     {URL: srv.URL, Header: http.Header{"X A": {"1"}}},
		"lower-case method":   {Method: "get", URL: srv.URL},
		"CONNECT":             {Method: "CONNECT", URL: srv.URL},
		"relative URL":        {URL: "/x"},
		"no scheme":           {URL: "127.0.0.1/x"},
	} {
		if _, err := do(t, ts, req); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: %v; want invalid", name, err)
		}
	}
}

func TestSession_networkErrors(t *testing.T) {
	refused := nettest.ClosedPort(t)
	reset := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, _, err := w.(http.Hijacker).Hijack()
		if err != nil {
			return
		}
		conn.(*net.TCPConn).SetLinger(0)
		conn.Close()
	}))
	defer reset.Close()
	garbage := nettest.Listen(t)
	go func() {
		for {
			c, err := garbage.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				buf := make([]byte, 4096)
				c.Read(buf) // the request, then an answer that is not HTTP
				c.Write([]byte("this is not HTTP\r\n\r\n"))
			}()
		}
	}()
	ts := newTestSession(t, context.Background(), fakeResolver{},
		serverGrant(t, "refused", "http://"+refused),
		serverGrant(t, "reset", reset.URL),
		serverGrant(t, "garbage", "http://"+garbage.Addr().String()),
		Grant{Name: "nxdomain", Scheme: "http", Host: "nowhere.test"},
	)
	for _, tc := range []struct {
		url   string
		kind  error
		class abi.Class
	}{
		{"http://" + refused + "/", ErrNetwork, abi.ClassRetryable},
		{reset.URL + "/", ErrNetwork, abi.ClassRetryable},
		{"http://nowhere.test/", ErrNetwork, abi.ClassRetryable},
		{"http://" + garbage.Addr().String() + "/", ErrProtocol, abi.ClassPermanent},
	} {
		_, err := do(t, ts, &Request{URL: tc.url})
		var e *Error
		if !errors.Is(err, tc.kind) || !errors.As(err, &e) || e.Class() != tc.class {
			t.Errorf("GET %s = %v; want %v, %s", tc.url, err, tc.kind, tc.class)
		}
	}
}

func TestSession_tls(t *testing.T) {
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "secure") }))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshake is expected
	srv.StartTLS()
	defer srv.Close()
	g := serverGrant(t, "tls", srv.URL)

	// Not trusted: a permanent TLS failure.
	ts := newTestSession(t, context.Background(), nil, g)
	_, err := do(t, ts, &Request{URL: srv.URL + "/"})
	var e *Error
	if !errors.Is(err, ErrTLS) || !errors.As(err, &e) || e.Class() != abi.ClassPermanent || e.Code() != abi.CodeNetworkError {
		t.Fatalf("untrusted certificate: %v; want a permanent TLS failure", err)
	}

	// Trusted.
	pool := x509.NewCertPool()
	pool.AddCert(srv.Certificate())
	s := NewSession(context.Background(), mustPolicy(t, g), SessionConfig{rootCAs: pool, dial: (&guardedDial{}).dial})
	defer s.Close()
	resp, err := s.Do(context.Background(), &Request{URL: srv.URL + "/"})
	if err != nil {
		t.Fatal(err)
	}
	body, _ := readAll(t, resp)
	if string(body) != "secure" {
		t.Fatalf("body %q", body)
	}

	// A TLS handshake that never finishes is a connect timeout.
	silent := nettest.Silent(t)
	g2 := serverGrant(t, "silent", "https://"+silent)
	g2.TLSTimeout = 200 * time.Millisecond
	ts = newTestSession(t, context.Background(), nil, g2)
	start := time.Now()
	_, err = do(t, ts, &Request{URL: "https://" + silent + "/"})
	if elapsed := time.Since(start); !errors.Is(err, ErrConnectTimeout) || elapsed > 5*time.Second {
		t.Fatalf("silent TLS server: %v after %s", err, elapsed)
	}
}

// TestSession_close: closing the session aborts a body being read and
// refuses later requests.
func TestSession_close(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(200)
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	}))
	defer srv.Close()
	ts := newTestSession(t, context.Background(), nil, serverGrant(t, "srv", srv.URL))
	resp, err := do(t, ts, &Request{URL: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := io.ReadAll(resp.Body)
		done <- err
	}()
	time.Sleep(50 * time.Millisecond)
	ts.Close()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("read ended without an error")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not abort the read")
	}
	if _, err := do(t, ts, &Request{URL: srv.URL}); !errors.Is(err, ErrClosed) {
		t.Fatalf("after Close: %v", err)
	}
}

// TestSession_logs: every request and every denial leaves a record with
// the step, method, host, rule, status and bytes.
func TestSession_logs(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "hello") }))
	defer srv.Close()
	ts := newTestSession(t, context.Background(), fakeResolver{"meta.test": {"169.254.169.254"}},
		serverGrant(t, "srv", srv.URL), Grant{Name: "meta", Scheme: "http", Host: "meta.test"})
	resp, err := do(t, ts, &Request{URL: srv.URL + "/x", Body: nil})
	if err != nil {
		t.Fatal(err)
	}
	readAll(t, resp)
	do(t, ts, &Request{URL: "http://169.254.169.254/"})
	do(t, ts, &Request{URL: "http://meta.test/"})

	var recs []map[string]any
	for line := range strings.SplitSeq(strings.TrimSpace(ts.logs.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("%v: %q", err, line)
		}
		recs = append(recs, m)
	}
	if len(recs) != 3 {
		t.Fatalf("%d records; want 3:\n%s", len(recs), ts.logs)
	}
	req, denial, addr := recs[0], recs[1], recs[2]
	if addr["@message"] != "http request denied" || addr["step_id"] != "step-1" || addr["host"] != "meta.test" ||
		addr["rule"] != "meta" || addr["range"] != "link-local (cloud metadata)" {
		t.Errorf("address denial record %v", addr)
	}
	if req["@message"] != "http request" || req["step_id"] != "step-1" || req["method"] != "GET" || req["host"] != "127.0.0.1" ||
		req["rule"] != "srv" || req["status"] != float64(200) || req["bytes"] != float64(5) {
		t.Errorf("request record %v", req)
	}
	if denial["@message"] != "http request denied" || denial["step_id"] != "step-1" || denial["method"] != "GET" ||
		denial["host"] != "169.254.169.254" || denial["rule"] != "none" || denial["kind"] != "denied" {
		t.Errorf("denial record %v", denial)
	}
}

// TestSession_hammer runs requests from many goroutines against one
// session, under the race detector, with the grant's concurrency cap
// holding throughout.
func TestSession_hammer(t *testing.T) {
	var cur, peak atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := cur.Add(1)
		defer cur.Add(-1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		time.Sleep(time.Millisecond)
		fmt.Fprint(w, "ok")
	}))
	defer srv.Close()
	g := serverGrant(t, "srv", srv.URL)
	g.MaxConcurrent = 3
	ts := newTestSession(t, context.Background(), nil, g)
	var wg sync.WaitGroup
	var ok, limited atomic.Int64
	for range 16 {
		wg.Go(func() {
			for range 20 {
				resp, err := do(t, ts, &Request{URL: srv.URL})
				if errors.Is(err, ErrLimit) {
					limited.Add(1)
					continue
				}
				if err != nil {
					t.Error(err)
					return
				}
				readAll(t, resp)
				ok.Add(1)
			}
		})
	}
	wg.Wait()
	if peak.Load() > 3 {
		t.Errorf("server saw %d requests at once; the cap is 3", peak.Load())
	}
	if ok.Load() == 0 {
		t.Error("no request succeeded")
	}
}
