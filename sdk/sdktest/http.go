//go:build !wasip1

package sdktest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"time"

	"github.com/blockhost/blockhost/abi"
	"github.com/blockhost/blockhost/sdk/internal/hostcall"
)

// DefaultHTTPMaxResponseBody is the response body cap of the fake host,
// the host's default for a grant.
const DefaultHTTPMaxResponseBody = 10 << 20

var _ hostcall.HTTPHost = (*fakeHost)(nil)

// fakeHTTP is the fake host's HTTP state. Every request is checked
// against Config.HTTPGrants as the host checks it (grant.go) and denied
// when none allows it; Config.HTTP answers the allowed ones in process,
// through httptest.ResponseRecorder. Names are not resolved, so a name
// that resolves to a private address on the host is not caught here; the
// grant's timeouts and caps other than the response body cap are the real
// host's business. Status classes, Retry-After, the body cap and the host
// call results are the host's.
type fakeHTTP struct {
	handler   http.Handler
	rules     []grantRule
	responses map[uint32]*fakeResponse
	next      uint32
	lastErr   *abi.Error
}

type fakeResponse struct {
	head  []byte
	body  []byte
	pos   int
	limit int
}

// httpFail records the detail of a failed call; the caller holds mu.
func (h *fakeHost) httpFail(r abi.Result, code abi.Code, class abi.Class, format string, args ...any) abi.Result {
	h.http.lastErr = abi.NewError(code, class, fmt.Sprintf(format, args...))
	return r
}

func (h *fakeHost) HTTPRequest(head, body []byte) (uint32, uint32, abi.Result) {
	h.mu.Lock()
	if h.begin() {
		h.mu.Unlock()
		return 0, 0, abi.ResultTimeout
	}
	handler := h.http.handler
	fail := func(r abi.Result, code abi.Code, format string, args ...any) (uint32, uint32, abi.Result) {
		r = h.httpFail(r, code, abi.ClassPermanent, format, args...)
		h.mu.Unlock()
		return 0, 0, r
	}
	var rh abi.HTTPRequest
	if err := json.Unmarshal(head, &rh); err != nil {
		return fail(abi.ResultInvalid, abi.CodeInvalidInput, "request head is not valid JSON: %v", err)
	}
	u, err := url.Parse(rh.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fail(abi.ResultInvalid, abi.CodeInvalidInput, "URL %q is not an absolute http or https URL", rh.URL)
	}
	method := rh.Method
	if method == "" {
		method = http.MethodGet
	}
	if u.User != nil {
		return fail(abi.ResultDenied, abi.CodePermissionDenied, "the URL carries userinfo (user@host); send credentials in a header")
	}
	rule, why := matchGrant(h.http.rules, method, u)
	if rule == nil {
		return fail(abi.ResultDenied, abi.CodePermissionDenied, "%s", why)
	}
	if handler == nil {
		r := h.httpFail(abi.ResultUnavailable, abi.CodeNetworkError, abi.ClassRetryable,
			"grant %s allows it, but nothing answers: sdktest.Config.HTTP is nil", rule.Name)
		h.mu.Unlock()
		return 0, 0, r
	}
	grant := rule.Name
	req, err := http.NewRequest(method, rh.URL, bytes.NewReader(body))
	if err != nil {
		return fail(abi.ResultInvalid, abi.CodeInvalidInput, "%v", err)
	}
	for k, vs := range rh.Headers {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	h.mu.Unlock()

	// The handler runs without the lock: it may take its time.
	rec := httptest.NewRecorder()
	handler.ServeHTTP(rec, req)
	res := rec.Result()

	h.mu.Lock()
	defer h.mu.Unlock()
	limit := DefaultHTTPMaxResponseBody
	if rh.MaxResponseBody > 0 && rh.MaxResponseBody < int64(limit) {
		limit = int(rh.MaxResponseBody)
	}
	out, _ := json.Marshal(abi.HTTPResponse{
		Status:        res.StatusCode,
		Headers:       res.Header,
		URL:           rh.URL,
		ContentLength: res.ContentLength,
		BodyLimit:     int64(limit),
		Grant:         grant,
		Error:         statusError(res.StatusCode, res.Header.Get("Retry-After")),
	})
	if h.http.responses == nil {
		h.http.responses = map[uint32]*fakeResponse{}
	}
	h.http.next++
	h.http.responses[h.http.next] = &fakeResponse{head: out, body: rec.Body.Bytes(), limit: limit}
	return h.http.next, uint32(len(out)), abi.ResultOK
}

// statusError classifies a status as the host does.
func statusError(status int, retryAfter string) *abi.Error {
	if status < 400 {
		return nil
	}
	e := abi.NewError(abi.CodeHTTPError, abi.HTTPStatusClass(status), fmt.Sprintf("HTTP %d %s", status, http.StatusText(status)))
	if abi.HTTPStatusCarriesRetryAfter(status) {
		if d, ok := abi.ParseRetryAfter(retryAfter, time.Now()); ok {
			e.SetRetryAfter(d)
			e.Message += fmt.Sprintf(" (Retry-After %s)", d)
		}
	}
	return e
}

func (h *fakeHost) response(handle uint32) (*fakeResponse, abi.Result) {
	r, ok := h.http.responses[handle]
	if !ok {
		return nil, h.httpFail(abi.ResultNotFound, abi.CodeInvalidInput, abi.ClassPermanent, "no open response has handle %d", handle)
	}
	return r, abi.ResultOK
}

func (h *fakeHost) HTTPResponseHead(handle uint32, buf []byte) (uint32, abi.Result) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.begin() {
		return 0, abi.ResultTimeout
	}
	r, res := h.response(handle)
	if res != abi.ResultOK {
		return 0, res
	}
	if len(buf) < len(r.head) {
		return uint32(len(r.head)), abi.ResultLimit
	}
	return uint32(copy(buf, r.head)), abi.ResultOK
}

func (h *fakeHost) HTTPBodyRead(handle uint32, buf []byte) (uint32, abi.Result) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.begin() {
		return 0, abi.ResultTimeout
	}
	r, res := h.response(handle)
	if res != abi.ResultOK {
		return 0, res
	}
	if len(buf) == 0 {
		return 0, h.httpFail(abi.ResultInvalid, abi.CodeInvalidInput, abi.ClassPermanent, "buffer is empty")
	}
	if r.pos >= r.limit && r.pos < len(r.body) {
		return 0, h.httpFail(abi.ResultLimit, abi.CodeQuotaExceeded, abi.ClassPermanent,
			"response body is longer than the %d bytes allowed", r.limit)
	}
	end := min(len(r.body), r.limit, r.pos+len(buf), r.pos+64<<10)
	n := copy(buf, r.body[r.pos:end])
	r.pos += n
	return uint32(n), abi.ResultOK
}

func (h *fakeHost) HTTPClose(handle uint32) abi.Result {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.begin() {
		return abi.ResultTimeout
	}
	if _, res := h.response(handle); res != abi.ResultOK {
		return res
	}
	delete(h.http.responses, handle)
	return abi.ResultOK
}

func (h *fakeHost) HTTPLastError(buf []byte) (uint32, abi.Result) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.begin() {
		return 0, abi.ResultTimeout
	}
	if h.http.lastErr == nil {
		return 0, abi.ResultNotFound
	}
	out, _ := json.Marshal(h.http.lastErr)
	if len(buf) < len(out) {
		return uint32(len(out)), abi.ResultLimit
	}
	return uint32(copy(buf, out)), abi.ResultOK
}
