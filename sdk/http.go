package sdk

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/blockhost/blockhost/abi"
	"github.com/blockhost/blockhost/sdk/internal/callerr"
	"github.com/blockhost/blockhost/sdk/internal/hostcall"
)

// Errors of the HTTP calls besides the host call sentinels (ErrDenied,
// ErrLimit, ErrTimeout, …). An *HTTPError matches the one for its code.
var (
	// ErrNetwork: the connection failed, was reset or closed early, the
	// name did not resolve, the response did not come in time, or the
	// server's certificate was not accepted (code network_error).
	ErrNetwork = errors.New("sdk: network error")
	// ErrConnectionTimeout: DNS and the TCP connection, or the TLS
	// handshake, took longer than the grant allows (code
	// connection_timeout).
	ErrConnectionTimeout = errors.New("sdk: connection timeout")
	// ErrHTTPStatus: HTTPResponse.StatusError for a status of 400 or more,
	// or a redirect loop (code http_error).
	ErrHTTPStatus = errors.New("sdk: HTTP error status")
	// ErrTruncated: the response body is longer than the grant's cap;
	// reading stopped at the cap. It also matches ErrLimit.
	ErrTruncated = errors.New("sdk: response body truncated")
)

// HTTPHeader is a request's or a response's header fields, shaped like
// net/http's Header: canonical names, each with its values in order.
type HTTPHeader map[string][]string

// Get returns the first value of the field name, or "".
func (h HTTPHeader) Get(name string) string {
	if v := h[canonicalHeaderKey(name)]; len(v) > 0 {
		return v[0]
	}
	return ""
}

// Values returns every value of the field name.
func (h HTTPHeader) Values(name string) []string { return h[canonicalHeaderKey(name)] }

// Set replaces the field name's values with value.
func (h HTTPHeader) Set(name, value string) { h[canonicalHeaderKey(name)] = []string{value} }

// Add appends value to the field name's values.
func (h HTTPHeader) Add(name, value string) {
	k := canonicalHeaderKey(name)
	h[k] = append(h[k], value)
}

// Del removes the field name.
func (h HTTPHeader) Del(name string) { delete(h, canonicalHeaderKey(name)) }

// canonicalHeaderKey writes a field name as net/http does:
// "content-type" is "Content-Type". A name with characters a field name
// cannot have is returned as it is, for the host to refuse.
func canonicalHeaderKey(s string) string {
	b := []byte(s)
	upper := true
	for i, c := range b {
		if c <= ' ' || c >= 0x7f || c == ':' {
			return s
		}
		switch {
		case upper && 'a' <= c && c <= 'z':
			b[i] = c - 'a' + 'A'
		case !upper && 'A' <= c && c <= 'Z':
			b[i] = c - 'A' + 'a'
		}
		upper = c == '-'
	}
	return string(b)
}

// HTTPRequest is a request to send with HTTPDo.
type HTTPRequest struct {
	// Method is the request method; empty means GET.
	Method string
	// URL is an absolute http or https URL.
	URL string
	// Header holds the fields to send. The host sets Host,
	// Content-Length and the hop-by-hop fields itself and refuses them
	// here.
	Header HTTPHeader
	// Body is sent as the request body; nil means none. HTTPDo reads it
	// whole before sending.
	Body io.Reader
	// ConnectTimeout, TLSTimeout, HeaderTimeout and Timeout shorten the
	// grant's timeouts for this request; zero keeps the grant's, and a
	// longer one is cut to the grant's. The request's total time is also
	// bounded by the deadline of the context given to HTTPDo.
	ConnectTimeout, TLSTimeout, HeaderTimeout, Timeout time.Duration
	// MaxResponseBody lowers the grant's response body cap; 0 keeps it.
	MaxResponseBody int64
}

// NewHTTPRequest returns a request with an empty header.
func NewHTTPRequest(method, url string, body io.Reader) *HTTPRequest {
	return &HTTPRequest{Method: method, URL: url, Header: HTTPHeader{}, Body: body}
}

// HTTPResponse is a response whose headers have arrived. Close its Body
// when done: until then it counts against the grant's requests in flight.
type HTTPResponse struct {
	// StatusCode is the HTTP status, such as 200.
	StatusCode int
	// Header is the response's header fields.
	Header HTTPHeader
	// URL is the URL that answered, after any redirects.
	URL string
	// Redirects counts the redirects followed.
	Redirects int
	// ContentLength is the body's length as the server announced it, or -1.
	ContentLength int64
	// BodyLimit is the most body bytes the grant lets the block read.
	BodyLimit int64
	// Grant names the grant that allowed the request.
	Grant string
	// Body reads the response body. Past BodyLimit it returns an error
	// matching ErrTruncated instead of io.EOF.
	Body io.ReadCloser

	statusErr *abi.Error
	method    string
}

// StatusError returns nil for a status below 400, and otherwise an
// *HTTPError matching ErrHTTPStatus whose code is http_error and whose
// class is the host's: retryable for 408, 429, 500, 502, 503 and 504,
// permanent for the others. For 429 and 503 it carries the Retry-After
// wait. Returned from a handler, it ends the step with that code and
// class, and the host copies the Retry-After into the step's result.
func (r *HTTPResponse) StatusError() error {
	if r.statusErr == nil {
		return nil
	}
	e := &HTTPError{Method: r.method, URL: r.URL, Result: abi.ResultOK, StatusCode: r.StatusCode,
		Code: r.statusErr.Code, Class: r.statusErr.Class, Message: r.statusErr.Message}
	e.RetryAfter, _ = r.statusErr.RetryAfter()
	return e
}

// HTTPError is an HTTP call that failed: a request the host refused or
// could not complete, a body that could not be read to its end, or (from
// StatusError) a response with a failed status.
//
// It matches, with errors.Is, the sentinel of its host call result
// (ErrDenied, ErrInvalid, ErrLimit, ErrUnavailable, ErrIO, ErrTimeout,
// ErrCancelled) and the sentinel of its code (ErrNetwork,
// ErrConnectionTimeout, ErrHTTPStatus, ErrTruncated); errors.As finds an
// *Error with its code and class, so a handler can return it as it is.
type HTTPError struct {
	// Method and URL are the request's.
	Method, URL string
	// Func is the host function that failed; empty for a status error.
	Func string
	// Result is what the host function returned; ResultOK for a status
	// error.
	Result abi.Result
	// Code, Class and Message are the host's account of the failure.
	Code    abi.Code
	Class   abi.Class
	Message string
	// StatusCode is the response's status for a status error, else 0.
	StatusCode int
	// RetryAfter is how long the server asked to wait (429 and 503), or 0.
	RetryAfter time.Duration
}

// Error returns the method, the URL and the host's message, naming the
// request once: the host's message for a failed request names it already.
func (e *HTTPError) Error() string {
	if strings.HasPrefix(e.Message, e.Method+" ") {
		return "sdk: " + e.Message
	}
	return "sdk: " + e.Method + " " + e.URL + ": " + e.Message
}

// Is matches the sentinel of the result and of the code.
func (e *HTTPError) Is(target error) bool {
	if e.Result != abi.ResultOK && target == (&CallError{Result: e.Result}).Unwrap() {
		return true
	}
	switch target {
	case ErrNetwork:
		return e.Code == abi.CodeNetworkError
	case ErrConnectionTimeout:
		return e.Code == abi.CodeConnectionTimeout
	case ErrHTTPStatus:
		return e.Code == abi.CodeHTTPError
	case ErrTruncated:
		return e.Func == abi.FuncHTTPBodyRead && e.Result == abi.ResultLimit
	}
	return false
}

// Unwrap returns the failure as an *Error with the host's code, class
// and message.
func (e *HTTPError) Unwrap() error {
	return &Error{Code: e.Code, Class: e.Class, Message: e.Error()}
}

// HTTPGet sends a GET request for url.
func HTTPGet(ctx context.Context, url string) (*HTTPResponse, error) {
	return HTTPDo(ctx, &HTTPRequest{Method: "GET", URL: url})
}

// HTTPPost sends a POST request with body, of type contentType.
func HTTPPost(ctx context.Context, url, contentType string, body io.Reader) (*HTTPResponse, error) {
	return HTTPDo(ctx, &HTTPRequest{Method: "POST", URL: url, Header: HTTPHeader{"Content-Type": {contentType}}, Body: body})
}

// HTTPDo sends req through the host, under the step's HTTP grants, and
// returns the response once its headers have arrived. As with net/http,
// a response with a failed status is a response, not an error: see
// HTTPResponse.StatusError.
//
// A failure is an *HTTPError. A request that no grant allows, or that
// would reach an address the grants do not reach, is refused before
// anything is sent, with an error matching ErrDenied that says which
// grants were checked.
//
// The host call blocks the block until the headers arrive. ctx's deadline
// shortens the request's total timeout; a ctx already done fails at once.
func HTTPDo(ctx context.Context, req *HTTPRequest) (*HTTPResponse, error) {
	method := req.Method
	if method == "" {
		method = "GET"
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("sdk: %s %s: %w", method, req.URL, context.Cause(ctx))
	}
	head := abi.HTTPRequest{
		Method:  method,
		URL:     req.URL,
		Headers: req.Header,
		Timeouts: abi.HTTPTimeouts{
			ConnectMS: ms(req.ConnectTimeout),
			TLSMS:     ms(req.TLSTimeout),
			HeadersMS: ms(req.HeaderTimeout),
			TotalMS:   ms(req.Timeout),
		},
		MaxResponseBody: req.MaxResponseBody,
	}
	if dl, ok := ctx.Deadline(); ok {
		left := ms(time.Until(dl))
		if left <= 0 {
			left = 1
		}
		if head.Timeouts.TotalMS == 0 || left < head.Timeouts.TotalMS {
			head.Timeouts.TotalMS = left
		}
	}
	var body []byte
	if req.Body != nil {
		var err error
		if body, err = io.ReadAll(req.Body); err != nil {
			return nil, fmt.Errorf("sdk: %s %s: reading the request body: %w", method, req.URL, err)
		}
	}
	headJSON, err := json.Marshal(head)
	if err != nil {
		return nil, fmt.Errorf("sdk: %s %s: encoding the request: %w", method, req.URL, err)
	}
	handle, headLen, r := hostcall.HTTPRequest(headJSON, body)
	if r != abi.ResultOK {
		return nil, httpFailure(abi.FuncHTTPRequest, r, method, req.URL)
	}
	buf := make([]byte, headLen)
	n, r := hostcall.HTTPResponseHead(handle, buf)
	if r != abi.ResultOK || n != headLen {
		hostcall.HTTPClose(handle)
		return nil, httpFailure(abi.FuncHTTPResponseHead, r, method, req.URL)
	}
	var rh abi.HTTPResponse
	if err := json.Unmarshal(buf, &rh); err != nil {
		hostcall.HTTPClose(handle)
		return nil, &HTTPError{Method: method, URL: req.URL, Func: abi.FuncHTTPResponseHead, Result: abi.ResultIO,
			Code: abi.CodeInternalError, Message: "the host's response head is not valid JSON: " + err.Error()}
	}
	return &HTTPResponse{
		StatusCode:    rh.Status,
		Header:        HTTPHeader(rh.Headers),
		URL:           rh.URL,
		Redirects:     rh.Redirects,
		ContentLength: rh.ContentLength,
		BodyLimit:     rh.BodyLimit,
		Grant:         rh.Grant,
		Body:          &httpBody{handle: handle, method: method, url: rh.URL},
		statusErr:     rh.Error,
		method:        method,
	}, nil
}

func ms(d time.Duration) int64 {
	if d <= 0 {
		return 0
	}
	return max(int64(d/time.Millisecond), 1)
}

// httpFailure builds the *HTTPError for a host call that returned r,
// with the host's detail when it has one.
func httpFailure(fn string, r abi.Result, method, url string) *HTTPError {
	e := &HTTPError{Method: method, URL: url, Func: fn, Result: r, Message: fn + ": " + r.String()}
	switch r {
	case abi.ResultTimeout:
		e.Code, e.Message = abi.CodeCancelledByTimeout, "the step's deadline passed"
		return e
	case abi.ResultCancelled:
		e.Code, e.Message = abi.CodeCancelledByUser, "the step was cancelled"
		return e
	}
	if d := lastHTTPError(); d != nil {
		e.Code, e.Class, e.Message = d.Code, d.Class, d.Message
		e.RetryAfter, _ = d.RetryAfter()
		return e
	}
	switch r {
	case abi.ResultDenied:
		e.Code = abi.CodePermissionDenied
	case abi.ResultInvalid:
		e.Code = abi.CodeInvalidInput
	case abi.ResultLimit:
		e.Code = abi.CodeQuotaExceeded
	case abi.ResultUnavailable:
		e.Code, e.Class = abi.CodeNetworkError, abi.ClassRetryable
	default:
		e.Code = abi.CodeNetworkError
	}
	return e
}

// lastHTTPError asks the host for the detail of its last failed HTTP
// call, or returns nil.
func lastHTTPError() *abi.Error { return callerr.LastError(hostcall.HTTPLastError) }

// httpBody reads a response body through http_body_read.
type httpBody struct {
	handle      uint32
	method, url string
	err         error // sticky: io.EOF or the failure
	closed      bool
}

func (b *httpBody) Read(p []byte) (int, error) {
	if b.closed {
		return 0, &HTTPError{Method: b.method, URL: b.url, Func: abi.FuncHTTPBodyRead, Result: abi.ResultNotFound,
			Code: abi.CodeInvalidInput, Message: "response body is closed"}
	}
	if b.err != nil {
		return 0, b.err
	}
	if len(p) == 0 {
		return 0, nil
	}
	n, r := hostcall.HTTPBodyRead(b.handle, p)
	switch {
	case r == abi.ResultOK && n == 0:
		b.err = io.EOF
	case r == abi.ResultOK:
		return int(n), nil
	default:
		b.err = httpFailure(abi.FuncHTTPBodyRead, r, b.method, b.url)
	}
	return 0, b.err
}

func (b *httpBody) Close() error {
	if b.closed {
		return nil
	}
	b.closed = true
	if r := hostcall.HTTPClose(b.handle); r != abi.ResultOK && r != abi.ResultNotFound {
		return &CallError{Func: abi.FuncHTTPClose, Result: r}
	}
	return nil
}

// ReadHTTPBody reads a response's whole body and closes it. It is
// io.ReadAll and Close together, for the common case.
func ReadHTTPBody(resp *HTTPResponse) ([]byte, error) {
	defer resp.Body.Close()
	var buf bytes.Buffer
	if resp.ContentLength > 0 && resp.ContentLength <= resp.BodyLimit {
		buf.Grow(int(resp.ContentLength))
	}
	_, err := buf.ReadFrom(resp.Body)
	return buf.Bytes(), err
}

// String describes the response as "200 from https://…".
func (r *HTTPResponse) String() string {
	return strconv.Itoa(r.StatusCode) + " from " + r.URL
}
