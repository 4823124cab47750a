package host

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/blockhost/blockhost/abi"
	"github.com/blockhost/blockhost/host/engine"
	"github.com/blockhost/blockhost/host/httpcap"
	"github.com/blockhost/blockhost/internal/nettest"
)

// Memory layout of the HTTP host call tests.
const (
	headAt = 0
	bodyAt = 8 << 10
	respAt = 16 << 10
	bufAt  = 20 << 10
	nAt    = 60 << 10
)

// httpServer is a loopback server counting its connections, and a policy
// granting it.
func httpServer(t *testing.T, h http.Handler) (string, *nettest.CountingListener, *httpcap.Policy) {
	t.Helper()
	l := nettest.Listen(t)
	srv := &httptest.Server{Listener: l, Config: &http.Server{Handler: h}}
	srv.Start()
	t.Cleanup(srv.Close)
	host, port, _ := net.SplitHostPort(l.Addr().String())
	n, _ := strconv.Atoi(port)
	p, err := httpcap.NewPolicy(httpcap.Grant{Name: "srv", Scheme: "http", Host: host, Port: uint16(n),
		Methods: []string{"GET", "POST"}, AllowRanges: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}})
	if err != nil {
		t.Fatal(err)
	}
	return srv.URL, l, p
}

// withHTTP opens the step's HTTP capability as Block.Run does.
func (ts *testStep) withHTTP(t *testing.T, p *httpcap.Policy) *testStep {
	t.Helper()
	if err := ts.st.open(ts.ctx, Grants{HTTP: p}, &engine.RunConfig{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ts.st.close)
	return ts
}

// callHTTP is callHost for the functions registered from init, which the
// hostFuncs table, built before any init runs, does not have.
func callHTTP(t testing.TB, ctx context.Context, mem engine.Memory, name string, args ...uint64) abi.Result {
	t.Helper()
	for _, f := range hostModule().Functions {
		if f.Name != name {
			continue
		}
		if len(args) != len(f.Signature.Params) {
			t.Fatalf("%s takes %d arguments, got %d", name, len(f.Signature.Params), len(args))
		}
		stack := make([]uint64, max(len(f.Signature.Params), len(f.Signature.Results)))
		copy(stack, args)
		f.Func(ctx, mem, stack)
		return abi.Result(stack[0])
	}
	t.Fatalf("no host function %q", name)
	return 0
}

func (ts *testStep) hcall(t testing.TB, name string, args ...uint64) abi.Result {
	t.Helper()
	return callHTTP(t, ts.ctx, ts.mem, name, args...)
}

// putHead writes a request head and returns its length.
func (ts *testStep) putHead(t *testing.T, head abi.HTTPRequest) uint64 {
	t.Helper()
	b, err := json.Marshal(head)
	if err != nil {
		t.Fatal(err)
	}
	ts.mem.put(headAt, string(b))
	return uint64(len(b))
}

func (ts *testStep) lastError(t *testing.T) *abi.Error {
	t.Helper()
	if r := ts.hcall(t, abi.FuncHTTPLastError, bufAt, 4096, nAt); r != abi.ResultOK {
		t.Fatalf("http_last_error = %s", r)
	}
	var e abi.Error
	if err := json.Unmarshal(ts.mem.buf[bufAt:bufAt+ts.mem.u32(nAt)], &e); err != nil {
		t.Fatal(err)
	}
	return &e
}

func TestHTTPHostCalls_roundTrip(t *testing.T) {
	url, _, p := httpServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body := new(bytes.Buffer)
		body.ReadFrom(r.Body)
		w.Header().Set("X-Echo", r.Header.Get("X-In"))
		fmt.Fprintf(w, "%s:%s", r.Method, body)
	}))
	ts := newTestStep(t, "", Limits{}).withHTTP(t, p)
	n := ts.putHead(t, abi.HTTPRequest{Method: "POST", URL: url + "/x", Headers: map[string][]string{"X-In": {"v"}}})
	ts.mem.put(bodyAt, "payload")
	if r := ts.hcall(t, abi.FuncHTTPRequest, headAt, n, bodyAt, 7, respAt); r != abi.ResultOK {
		t.Fatalf("http_request = %s: %+v", r, ts.detail(t, abi.FuncHTTPLastError))
	}
	handle, headLen := ts.mem.u32(respAt), ts.mem.u32(respAt+4)

	// A buffer one byte short gets limit and the length, and no bytes.
	before := bytes.Clone(ts.mem.buf[bufAt : bufAt+headLen])
	if r := ts.hcall(t, abi.FuncHTTPResponseHead, uint64(handle), bufAt, uint64(headLen-1), nAt); r != abi.ResultLimit || ts.mem.u32(nAt) != headLen {
		t.Fatalf("short buffer: %s, n %d", r, ts.mem.u32(nAt))
	}
	if !bytes.Equal(before, ts.mem.buf[bufAt:bufAt+headLen]) {
		t.Fatal("a refused http_response_head wrote to the buffer")
	}
	if r := ts.hcall(t, abi.FuncHTTPResponseHead, uint64(handle), bufAt, uint64(headLen), nAt); r != abi.ResultOK {
		t.Fatalf("http_response_head = %s", r)
	}
	var head abi.HTTPResponse
	if err := json.Unmarshal(ts.mem.buf[bufAt:bufAt+headLen], &head); err != nil {
		t.Fatal(err)
	}
	if head.Status != 200 || head.Grant != "srv" || head.Headers["X-Echo"][0] != "v" || head.Error != nil || head.BodyLimit != httpcap.DefaultMaxResponseBody {
		t.Fatalf("head %+v", head)
	}

	var body []byte
	for {
		r := ts.hcall(t, abi.FuncHTTPBodyRead, uint64(handle), bufAt, 3, nAt)
		if r != abi.ResultOK {
			t.Fatalf("http_body_read = %s", r)
		}
		k := ts.mem.u32(nAt)
		if k == 0 {
			break
		}
		body = append(body, ts.mem.buf[bufAt:bufAt+k]...)
	}
	if string(body) != "POST:payload" {
		t.Fatalf("body %q", body)
	}
	if r := ts.hcall(t, abi.FuncHTTPClose, uint64(handle)); r != abi.ResultOK {
		t.Fatalf("http_close = %s", r)
	}
	for _, c := range []struct {
		fn   string
		args []uint64
	}{
		{abi.FuncHTTPClose, []uint64{uint64(handle)}},
		{abi.FuncHTTPBodyRead, []uint64{uint64(handle), bufAt, 16, nAt}},
		{abi.FuncHTTPResponseHead, []uint64{uint64(handle), bufAt, 4096, nAt}},
		{abi.FuncHTTPClose, []uint64{12345}},
	} {
		if r := ts.hcall(t, c.fn, c.args...); r != abi.ResultNotFound {
			t.Errorf("%s on a closed handle = %s; want not_found", c.fn, r)
		}
	}
}

func TestHTTPHostCalls_noGrants(t *testing.T) {
	ts := newTestStep(t, "", Limits{})
	if r := ts.hcall(t, abi.FuncHTTPLastError, bufAt, 4096, nAt); r != abi.ResultNotFound {
		t.Fatalf("http_last_error before any failure = %s; want not_found", r)
	}
	n := ts.putHead(t, abi.HTTPRequest{URL: "http://127.0.0.1:1/"})
	if r := ts.hcall(t, abi.FuncHTTPRequest, headAt, n, 0, 0, respAt); r != abi.ResultDenied {
		t.Fatalf("http_request = %s; want denied", r)
	}
	if e := ts.lastError(t); e.Code != abi.CodePermissionDenied || !strings.Contains(e.Message, "no HTTP grants") {
		t.Fatalf("detail %+v", e)
	}
	// The detail can be read again, and a short buffer says how long it is.
	if r := ts.hcall(t, abi.FuncHTTPLastError, bufAt, 4, nAt); r != abi.ResultLimit || ts.mem.u32(nAt) <= 4 {
		t.Fatalf("short buffer: %s n %d", r, ts.mem.u32(nAt))
	}
	if e := ts.lastError(t); e.Code != abi.CodePermissionDenied {
		t.Fatalf("detail lost: %+v", e)
	}
}

// TestHTTPHostCalls_refusedBeforeSending: bad arguments are refused with
// the right result, and the server sees no connection.
func TestHTTPHostCalls_refusedBeforeSending(t *testing.T) {
	url, l, p := httpServer(t, http.NotFoundHandler())
	const memSize = 64 << 10
	tests := []struct {
		name string
		head string
		args []uint64 // head_ptr, head_len, body_ptr, body_len, resp_ptr; head_len 0 means the head's
		want abi.Result
		code abi.Code
	}{
		{"resp_ptr out of bounds", `{"url":"` + url + `"}`, []uint64{headAt, 0, 0, 0, memSize - 4}, abi.ResultInvalid, abi.CodeInvalidInput},
		{"resp_ptr wrapping", `{"url":"` + url + `"}`, []uint64{headAt, 0, 0, 0, math.MaxUint32 - 3}, abi.ResultInvalid, abi.CodeInvalidInput},
		{"head out of bounds", `{"url":"` + url + `"}`, []uint64{memSize - 4, 16, 0, 0, respAt}, abi.ResultInvalid, abi.CodeInvalidInput},
		{"body out of bounds", `{"url":"` + url + `"}`, []uint64{headAt, 0, memSize - 4, 16, respAt}, abi.ResultInvalid, abi.CodeInvalidInput},
		{"head over the cap", `{}`, []uint64{headAt, abi.MaxHTTPHead + 1, 0, 0, respAt}, abi.ResultLimit, abi.CodeQuotaExceeded},
		{"head not JSON", `{"url":`, []uint64{headAt, 0, 0, 0, respAt}, abi.ResultInvalid, abi.CodeInvalidInput},
		{"unknown field", `{"url":"` + url + `","proxy":"x"}`, []uint64{headAt, 0, 0, 0, respAt}, abi.ResultInvalid, abi.CodeInvalidInput},
		{"bad scheme", `{"url":"ftp://127.0.0.1/"}`, []uint64{headAt, 0, 0, 0, respAt}, abi.ResultInvalid, abi.CodeInvalidInput},
		{"Host header", `{"url":"` + url + `","headers":{"Host":["evil"]}}`, []uint64{headAt, 0, 0, 0, respAt}, abi.ResultInvalid, abi.CodeInvalidInput},
		{"method not granted", `{"method":"DELETE","url":"` + url + `"}`, []uint64{headAt, 0, 0, 0, respAt}, abi.ResultDenied, abi.CodePermissionDenied},
		{"metadata", `{"url":"http://169.254.169.254/latest/meta-data/"}`, []uint64{headAt, 0, 0, 0, respAt}, abi.ResultDenied, abi.CodePermissionDenied},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ts := newTestStep(t, "", Limits{}).withHTTP(t, p)
			ts.mem = newFakeMemory(memSize)
			ts.mem.put(headAt, tc.head)
			if tc.args[1] == 0 {
				tc.args[1] = uint64(len(tc.head))
			}
			if r := ts.hcall(t, abi.FuncHTTPRequest, tc.args...); r != tc.want {
				t.Fatalf("http_request = %s; want %s", r, tc.want)
			}
			if e := ts.lastError(t); e.Code != tc.code {
				t.Fatalf("detail %+v; want code %s", e, tc.code)
			}
		})
	}
	if l.Accepted() != 0 {
		t.Fatalf("the server accepted %d connections", l.Accepted())
	}
}

func TestHTTPHostCalls_badReadArguments(t *testing.T) {
	url, _, p := httpServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "ok") }))
	ts := newTestStep(t, "", Limits{}).withHTTP(t, p)
	n := ts.putHead(t, abi.HTTPRequest{URL: url})
	if r := ts.hcall(t, abi.FuncHTTPRequest, headAt, n, 0, 0, respAt); r != abi.ResultOK {
		t.Fatal(r)
	}
	h := uint64(ts.mem.u32(respAt))
	for _, c := range []struct {
		fn   string
		args []uint64
	}{
		{abi.FuncHTTPBodyRead, []uint64{h, bufAt, 0, nAt}},
		{abi.FuncHTTPBodyRead, []uint64{h, 64<<10 - 2, 16, nAt}},
		{abi.FuncHTTPBodyRead, []uint64{h, bufAt, 16, math.MaxUint32}},
		{abi.FuncHTTPResponseHead, []uint64{h, bufAt, 4096, 64<<10 - 1}},
		{abi.FuncHTTPResponseHead, []uint64{h, 64<<10 - 2, 4096, nAt}},
		{abi.FuncHTTPLastError, []uint64{bufAt, 4096, math.MaxUint32}},
	} {
		if r := ts.hcall(t, c.fn, c.args...); r != abi.ResultInvalid {
			t.Errorf("%s%v = %s; want invalid", c.fn, c.args, r)
		}
	}
	if r := callHTTP(t, ts.ctx, nil, abi.FuncHTTPRequest, headAt, n, 0, 0, respAt); r != abi.ResultInvalid {
		t.Errorf("http_request without memory = %s", r)
	}
}

// TestHTTPHostCalls_afterStepEnd: once the step is over every HTTP host
// function answers timeout or cancelled and does nothing else.
func TestHTTPHostCalls_afterStepEnd(t *testing.T) {
	url, l, p := httpServer(t, http.NotFoundHandler())
	for _, end := range []struct {
		name string
		want abi.Result
	}{
		{"timeout", abi.ResultTimeout},
		{"cancelled", abi.ResultCancelled},
	} {
		var ctx context.Context
		if end.want == abi.ResultTimeout {
			c, cancel := context.WithDeadlineCause(context.Background(), time.Now().Add(-time.Second), ErrStepTimeout)
			defer cancel()
			ctx = c
		} else {
			c, cancel := context.WithCancelCause(context.Background())
			cancel(ErrCancelled)
			ctx = c
		}
		ts := newTestStep(t, "", Limits{}).withHTTP(t, p).withContext(ctx)
		n := ts.putHead(t, abi.HTTPRequest{URL: url})
		for _, c := range []struct {
			fn   string
			args []uint64
		}{
			{abi.FuncHTTPRequest, []uint64{headAt, n, 0, 0, respAt}},
			{abi.FuncHTTPResponseHead, []uint64{1, bufAt, 4096, nAt}},
			{abi.FuncHTTPBodyRead, []uint64{1, bufAt, 4096, nAt}},
			{abi.FuncHTTPClose, []uint64{1}},
			{abi.FuncHTTPLastError, []uint64{bufAt, 4096, nAt}},
		} {
			memBefore := bytes.Clone(ts.mem.buf)
			if r := ts.hcall(t, c.fn, c.args...); r != end.want {
				t.Errorf("%s: %s = %s; want %s", end.name, c.fn, r, end.want)
			}
			if !bytes.Equal(memBefore, ts.mem.buf) {
				t.Errorf("%s: %s changed memory", end.name, c.fn)
			}
		}
		if !ts.st.sawEnd {
			t.Errorf("%s: step not marked as seen ended", end.name)
		}
	}
	if l.Accepted() != 0 {
		t.Fatalf("the server accepted %d connections", l.Accepted())
	}
}

// TestHTTPHostCalls_retryAfterReachesTheResult: a block that fails with
// http_error after a 503 gets the server's Retry-After in its error.
func TestHTTPHostCalls_retryAfterReachesTheResult(t *testing.T) {
	url, _, p := httpServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", "4")
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	for _, tc := range []struct {
		code abi.Code
		want bool
	}{{abi.CodeHTTPError, true}, {abi.CodeExecutionFailed, false}} {
		ts := newTestStep(t, "", Limits{}).withHTTP(t, p)
		n := ts.putHead(t, abi.HTTPRequest{URL: url})
		if r := ts.hcall(t, abi.FuncHTTPRequest, headAt, n, 0, 0, respAt); r != abi.ResultOK {
			t.Fatal(r)
		}
		ts.st.guestErr = abi.NewError(tc.code, abi.ClassRetryable, "upstream busy")
		ts.st.close()
		d, ok := ts.st.guestErr.RetryAfter()
		if ok != tc.want || ok && d != 4*time.Second {
			t.Errorf("code %s: retry after %s, %v; want %v", tc.code, d, ok, tc.want)
		}
	}
}

func TestHTTPHostCalls_sessionErrorsKeepTheirClass(t *testing.T) {
	refused := nettest.ClosedPort(t)
	host, port, _ := net.SplitHostPort(refused)
	pn, _ := strconv.Atoi(port)
	p, err := httpcap.NewPolicy(httpcap.Grant{Name: "closed", Scheme: "http", Host: host, Port: uint16(pn),
		AllowRanges: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}})
	if err != nil {
		t.Fatal(err)
	}
	ts := newTestStep(t, "", Limits{}).withHTTP(t, p)
	n := ts.putHead(t, abi.HTTPRequest{URL: "http://" + refused + "/"})
	if r := ts.hcall(t, abi.FuncHTTPRequest, headAt, n, 0, 0, respAt); r != abi.ResultUnavailable {
		t.Fatalf("http_request = %s; want unavailable", r)
	}
	e := ts.lastError(t)
	if e.Code != abi.CodeNetworkError || e.Class != abi.ClassRetryable {
		t.Fatalf("detail %+v; want network_error, retryable", e)
	}
	if errors.Is(e, httpcap.ErrNetwork) {
		t.Fatal("the detail is data, not the session's error")
	}
}
