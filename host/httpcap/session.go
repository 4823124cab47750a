package httpcap

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/blockhost/blockhost/abi"
	"github.com/blockhost/blockhost/host/capability"
)

// Request is one request a block sends.
type Request struct {
	// Method is the request method; empty means GET.
	Method string
	// URL is the absolute http or https URL.
	URL string
	// Header is sent as it is, but for the fields the transport owns
	// (Host, Content-Length, Connection, Transfer-Encoding and the other
	// hop-by-hop fields), which are refused.
	Header http.Header
	// Body is the request body; nil means none.
	Body []byte
	// Timeouts shorten the grant's for this request.
	Timeouts Timeouts
	// MaxResponseBody lowers the grant's response body cap for this
	// request; 0 keeps it.
	MaxResponseBody int64
}

// Timeouts shorten a grant's timeouts; a zero field keeps the grant's.
type Timeouts struct {
	Connect, TLS, Header, Total time.Duration
}

// Response is a response whose headers have arrived. Its body must be
// closed; until then it counts against its grant's MaxConcurrent.
type Response struct {
	// StatusCode is the HTTP status, such as 200; Status its text, such
	// as "OK".
	StatusCode int
	Status     string
	// Header is the response's header fields.
	Header http.Header
	// URL is the URL that answered, after any redirects.
	URL string
	// Redirects counts the redirects followed.
	Redirects int
	// ContentLength is as the server announced it, or -1.
	ContentLength int64
	// BodyLimit is the most bytes Body delivers.
	BodyLimit int64
	// Grant names the grant that allowed the request.
	Grant string
	// Body is the response body, capped at BodyLimit.
	Body *Body
}

// Err returns the step error for the response's status: nil below 400,
// else http_error with the status's class and, for 429 and 503, the
// Retry-After wait (see StatusError).
func (r *Response) Err() *abi.Error {
	return StatusError(r.StatusCode, r.Status, r.Header.Get("Retry-After"), time.Now())
}

// SessionConfig configures a Session.
type SessionConfig struct {
	// Logger receives a record for every request and every denial; give
	// it the step's fields (step_id, block). Nil discards.
	Logger hclog.Logger
	// Audit receives an event for every request and every denial, for the
	// audit log: the method, the URL (userinfo and query values
	// redacted), the grant, the status, the body bytes and the duration.
	// Nil records nothing.
	Audit func(capability.Event)

	// For this package's tests only: where names are resolved and
	// addresses dialled, and the roots TLS trusts.
	resolver resolver
	dial     dialFunc
	rootCAs  *x509.CertPool
}

// Session sends one step's requests under a Policy. It is safe for
// concurrent use. Close it when the step ends: that aborts what is still
// in flight and closes every connection.
type Session struct {
	policy *Policy
	cfg    SessionConfig
	logger hclog.Logger
	client *http.Client

	// ctx ends when the step's context does or the session is closed.
	ctx  context.Context
	stop context.CancelCauseFunc

	mu         sync.Mutex
	closed     bool
	transports map[*rule]*http.Transport
	inflight   map[*rule]int
	open       map[*Body]struct{}
	retryAfter *time.Duration // of the last response, for 429 and 503
}

// NewSession returns a session sending under p for the step whose context
// is ctx. When ctx ends, so does everything the session is doing.
func NewSession(ctx context.Context, p *Policy, cfg SessionConfig) *Session {
	if cfg.Logger == nil {
		cfg.Logger = hclog.NewNullLogger()
	}
	if cfg.resolver == nil {
		cfg.resolver = net.DefaultResolver
	}
	if cfg.dial == nil {
		cfg.dial = netDial
	}
	s := &Session{
		policy:     p,
		cfg:        cfg,
		logger:     cfg.Logger,
		transports: map[*rule]*http.Transport{},
		inflight:   map[*rule]int{},
		open:       map[*Body]struct{}{},
	}
	s.ctx, s.stop = context.WithCancelCause(ctx)
	s.client = &http.Client{Transport: router{s}, CheckRedirect: s.checkRedirect}
	return s
}

// Close aborts the session's requests in flight, closes the bodies still
// open and every connection. Later calls to Do fail with ErrClosed.
func (s *Session) Close() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	bodies := make([]*Body, 0, len(s.open))
	for b := range s.open {
		bodies = append(bodies, b)
	}
	s.mu.Unlock()
	s.stop(ErrClosed)
	for _, b := range bodies {
		b.Close()
	}
	s.mu.Lock()
	for _, t := range s.transports {
		t.CloseIdleConnections()
	}
	s.mu.Unlock()
}

// LastRetryAfter returns the Retry-After wait of the last response the
// session received, when that response was a 429 or 503 that carried a
// valid one.
func (s *Session) LastRetryAfter() (time.Duration, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.retryAfter == nil {
		return 0, false
	}
	return *s.retryAfter, true
}

// reqKey carries a request's *reqState in its context, to the redirect
// check, the router and the dialer.
type reqKey struct{}

// reqState is what the session knows of one request across its hops.
type reqState struct {
	rule     *rule // the grant of the first request
	timeouts Timeouts
	hops     int
	// crossOrigin is set once a redirect hop went to another scheme,
	// host or port than the first request.
	crossOrigin bool
}

// Do sends req and returns the response once its headers have arrived,
// or an *Error. ctx is the step's context (or one derived from it): when
// it ends, the request is aborted and Do returns ErrStepEnded. A response
// of any status is a response, not an error; Response.Err classifies it.
func (s *Session) Do(ctx context.Context, req *Request) (*Response, error) {
	start := time.Now()
	method := req.Method
	if method == "" {
		method = http.MethodGet
	}
	if err := s.live(ctx); err != nil {
		return nil, err
	}
	r, t, err := s.policy.check(method, req.URL)
	if err != nil {
		s.logDenied(method, t.Host, req.URL, r, err)
		return nil, err
	}
	fail := func(kind error, format string, args ...any) (*Response, error) {
		err := &Error{Kind: kind, Method: method, URL: redact(req.URL), Grant: r.Name, Reason: fmt.Sprintf(format, args...)}
		s.logDenied(method, t.Host, req.URL, r, err)
		return nil, err
	}
	header, size, err := checkHeader(req.Header)
	if err != nil {
		return fail(ErrInvalid, "%v", err)
	}
	if size > r.MaxHeaderBytes {
		return fail(ErrLimit, "request header fields are %d bytes, over the %d of grant %s", size, r.MaxHeaderBytes, r.Name)
	}
	if int64(len(req.Body)) > r.MaxRequestBody {
		return fail(ErrLimit, "request body is %d bytes, over the %d of grant %s", len(req.Body), r.MaxRequestBody, r.Name)
	}
	if !s.acquire(r) {
		return fail(ErrLimit, "grant %s allows %d requests in flight per step, and that many are (close response bodies when done)", r.Name, r.MaxConcurrent)
	}

	total := shorter(r.TotalTimeout, req.Timeouts.Total)
	rs := &reqState{rule: r, timeouts: req.Timeouts}
	base, cancelBase := context.WithCancelCause(context.WithValue(ctx, reqKey{}, rs))
	stopAfter := context.AfterFunc(s.ctx, func() { cancelBase(context.Cause(s.ctx)) })
	rctx, cancelTotal := context.WithTimeoutCause(base, total, errTotalTimeout)
	release := func() {
		stopAfter()
		cancelTotal()
		cancelBase(nil)
		s.releaseSlot(r)
	}
	var body io.Reader
	if req.Body != nil {
		body = bytes.NewReader(req.Body)
	}
	hreq, err := http.NewRequestWithContext(rctx, method, req.URL, body)
	if err != nil {
		release()
		return fail(ErrInvalid, "%v", err)
	}
	hreq.URL.Fragment, hreq.URL.RawFragment = "", ""
	hreq.Header = header

	resp, err := s.client.Do(hreq)
	dep := Dependency(t)
	if err != nil {
		e := s.classify(ctx, rctx, method, req.URL, r, total, err)
		release()
		if reachedOrigin(e.Kind) {
			capability.ReportDependency(ctx, dep, e.Class() == abi.ClassRetryable)
		}
		if e.Kind == ErrDenied {
			// A resolved address the grant does not reach, or a redirect
			// hop no grant allows, which the router has logged already.
			if !e.logged {
				s.logDenied(method, t.Host, req.URL, r, e)
			}
		} else {
			s.logFailed(method, t.Host, req.URL, e, time.Since(start))
		}
		return nil, e
	}

	// The origin answered: unhealthy when its status says so (5xx, 429,
	// 408: the statuses abi.HTTPStatusClass calls retryable).
	capability.ReportDependency(ctx, dep, resp.StatusCode >= 400 && abi.HTTPStatusClass(resp.StatusCode) == abi.ClassRetryable)

	limit := r.MaxResponseBody
	if req.MaxResponseBody > 0 && req.MaxResponseBody < limit {
		limit = req.MaxResponseBody
	}
	out := &Response{
		StatusCode:    resp.StatusCode,
		Status:        http.StatusText(resp.StatusCode),
		Header:        resp.Header,
		URL:           resp.Request.URL.String(),
		Redirects:     rs.hops - 1,
		ContentLength: resp.ContentLength,
		BodyLimit:     limit,
		Grant:         r.Name,
	}
	b := &Body{s: s, rc: resp.Body, limit: limit, ctx: ctx, rctx: rctx, total: total, method: method, url: req.URL, grant: r.Name,
		abort: func() { cancelBase(ErrClosed) }}
	b.done = func() {
		release()
		s.mu.Lock()
		delete(s.open, b)
		s.mu.Unlock()
		took := time.Since(start)
		s.logger.Info("http request", "method", method, "host", t.Host, "rule", r.Name,
			"status", resp.StatusCode, "bytes", b.n, "request_bytes", len(req.Body), "redirects", out.Redirects,
			"truncated", b.truncated, "ms", took.Milliseconds())
		if s.cfg.Audit != nil {
			s.cfg.Audit(capability.Event{Capability: Name, Op: "request", Target: redact(req.URL), Grant: r.Name,
				Bytes: b.n, Duration: took, Fields: map[string]any{"method": method, "status": resp.StatusCode,
					"request_bytes": len(req.Body), "redirects": out.Redirects, "truncated": b.truncated}})
		}
	}
	s.mu.Lock()
	closed := s.closed
	if !closed {
		s.open[b] = struct{}{}
	}
	if abi.HTTPStatusCarriesRetryAfter(resp.StatusCode) {
		if d, ok := abi.ParseRetryAfter(resp.Header.Get("Retry-After"), time.Now()); ok {
			s.retryAfter = &d
		} else {
			s.retryAfter = nil
		}
	} else {
		s.retryAfter = nil
	}
	s.mu.Unlock()
	out.Body = b
	if closed {
		b.Close()
	}
	return out, nil
}

// Dependency returns the name of the origin t as a dependency of the
// executor's circuit breaker and retry budget: "http:HOST:PORT", as the
// worker names an http.request job's. Every request that reaches the
// origin (or fails to connect to it) reports to it through the step's
// context (capability.ReportDependency), from a WebAssembly block's
// http_* calls and from the built-in http.request alike; a request the
// policy refuses, or cut by the step's end, reports nothing.
func Dependency(t Target) string {
	return "http:" + net.JoinHostPort(t.Host, strconv.Itoa(int(t.Port)))
}

// reachedOrigin reports whether a failure of the kind says something of
// the origin's health: a refused or failed connection, a timeout, a TLS or
// protocol failure. A refusal by the policy, an invalid request, a cap,
// a failed redirect or the step's end says nothing of it.
func reachedOrigin(kind error) bool {
	switch kind {
	case ErrConnectTimeout, ErrNetwork, ErrTLS, ErrProtocol:
		return true
	}
	return false
}

// live returns the error for a session or step that has ended, or nil.
func (s *Session) live(ctx context.Context) error {
	if ctx.Err() != nil {
		return &Error{Kind: ErrStepEnded, Reason: "the step is over", Err: context.Cause(ctx)}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return &Error{Kind: ErrClosed, Reason: "the step's HTTP session is closed"}
	}
	return nil
}

func (s *Session) acquire(r *rule) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.inflight[r] >= r.MaxConcurrent {
		return false
	}
	s.inflight[r]++
	return true
}

func (s *Session) releaseSlot(r *rule) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.inflight[r]--
}

// transport returns the grant's transport, made on first use. Each grant
// has its own, so a connection dialled under one grant's address ranges
// is never reused for a request under another's.
func (s *Session) transport(r *rule) *http.Transport {
	s.mu.Lock()
	defer s.mu.Unlock()
	if t, ok := s.transports[r]; ok {
		return t
	}
	d := dialer{s: s, r: r}
	t := &http.Transport{
		// Never a proxy from the environment: the proxy's address would be
		// dialled instead of the checked one.
		Proxy:          nil,
		DialContext:    d.DialContext,
		DialTLSContext: d.DialTLSContext,
		// The block sees the body the server sent, as the server sent it.
		DisableCompression:     true,
		MaxResponseHeaderBytes: r.MaxHeaderBytes,
		MaxIdleConnsPerHost:    r.MaxConcurrent,
		IdleConnTimeout:        30 * time.Second,
	}
	s.transports[r] = t
	return t
}

// router sends every hop of a request — the first and each redirect —
// through the transport of the grant that allows that hop, and refuses a
// hop no grant allows before anything is dialled.
type router struct{ s *Session }

func (rt router) RoundTrip(req *http.Request) (*http.Response, error) {
	rs, _ := req.Context().Value(reqKey{}).(*reqState)
	if rs == nil {
		return nil, errors.New("httpcap: request not sent through Session.Do")
	}
	r, t, err := rt.s.policy.check(req.Method, req.URL.String())
	if err != nil {
		if req.Body != nil {
			req.Body.Close()
		}
		var he *Error
		if errors.As(err, &he) {
			he.Redirect = rs.hops > 0
			he.logged = true
		}
		rt.s.logDenied(req.Method, t.Host, req.URL.String(), r, err)
		return nil, err
	}
	rs.hops++

	// The response header timeout is the hop's grant's, started once the
	// request is written.
	ctx, cancel := context.WithCancelCause(req.Context())
	wait := shorter(r.HeaderTimeout, rs.timeouts.Header)
	var (
		mu       sync.Mutex
		timer    *time.Timer
		finished bool // RoundTrip returned: a late timer must not end the body
	)
	trace := &httptrace.ClientTrace{WroteRequest: func(httptrace.WroteRequestInfo) {
		mu.Lock()
		defer mu.Unlock()
		if timer == nil && !finished {
			timer = time.AfterFunc(wait, func() {
				mu.Lock()
				defer mu.Unlock()
				if !finished {
					cancel(errHeaderTimeout)
				}
			})
		}
	}}
	resp, err := rt.s.transport(r).RoundTrip(req.WithContext(httptrace.WithClientTrace(ctx, trace)))
	mu.Lock()
	finished = true
	if timer != nil {
		timer.Stop()
	}
	mu.Unlock()
	if err != nil {
		if errors.Is(context.Cause(ctx), errHeaderTimeout) {
			return nil, &Error{Kind: ErrNetwork, Grant: r.Name, Reason: fmt.Sprintf("no response headers within the header timeout of %s", wait), Err: err}
		}
		cancel(nil)
		var he *Error
		if rs.hops > 1 && errors.As(err, &he) {
			// Say it was a redirect hop that failed — an address its
			// grant does not reach, a refused connection — as a denial of
			// the hop itself does.
			he.Redirect = true
		}
		return nil, err
	}
	// On success ctx lives as long as the body: it ends with the
	// request's context, which Body.Close cancels.
	return resp, nil
}

// checkRedirect follows a redirect only as far as the first request's
// grant allows. The router checks the hop itself.
func (s *Session) checkRedirect(req *http.Request, via []*http.Request) error {
	rs, _ := via[0].Context().Value(reqKey{}).(*reqState)
	if rs == nil || rs.rule.Redirects == 0 {
		return http.ErrUseLastResponse
	}
	if len(via) > rs.rule.Redirects {
		return &Error{Kind: ErrRedirect, Grant: rs.rule.Name, Reason: fmt.Sprintf("more than the %d redirects grant %s allows", rs.rule.Redirects, rs.rule.Name)}
	}
	next := req.URL.String()
	for _, v := range via {
		if v.URL.String() == next {
			return &Error{Kind: ErrRedirect, Grant: rs.rule.Name, Reason: "redirect loop back to " + redact(next)}
		}
	}
	if !rs.crossOrigin && !sameOrigin(via[0].URL, req.URL) {
		rs.crossOrigin = true
	}
	if rs.crossOrigin {
		// The client copies the first request's header fields to every
		// hop; credentials meant for the first origin go no further.
		// Once a hop has left it, later hops carry none either, even
		// back to it.
		for _, name := range RedirectStripsHeaders {
			req.Header.Del(name)
		}
		for _, name := range rs.rule.SensitiveHeaders {
			req.Header.Del(name)
		}
		if hop, _, err := s.policy.check(req.Method, next); err == nil {
			for _, name := range hop.SensitiveHeaders {
				req.Header.Del(name)
			}
		}
	}
	return nil
}

// RedirectStripsHeaders are the request header fields removed from every
// redirect hop that goes to another scheme, host or port than the first
// request, together with the SensitiveHeaders of the first request's
// grant and of the hop's grant. Referer is among them: it would tell the
// other origin the path and query of the first.
var RedirectStripsHeaders = []string{"Authorization", "Cookie", "Proxy-Authorization", "Referer"}

// sameOrigin reports whether a and b have the same scheme, host and port,
// each read as the dialer reads it.
func sameOrigin(a, b *url.URL) bool {
	_, ta, errA := ParseURL(a.String())
	_, tb, errB := ParseURL(b.String())
	return errA == nil && errB == nil && ta.Scheme == tb.Scheme && ta.Host == tb.Host && ta.Port == tb.Port
}

// classify turns what the client returned into an *Error: the step's end
// first, then the request's own timeouts, then what the transport said.
func (s *Session) classify(ctx, rctx context.Context, method, url string, r *rule, total time.Duration, err error) *Error {
	e := s.classifyErr(ctx, rctx, r, total, err)
	e.Method, e.URL = method, redact(url)
	if e.Grant == "" {
		e.Grant = r.Name
	}
	return e
}

func (s *Session) classifyErr(ctx, rctx context.Context, r *rule, total time.Duration, err error) *Error {
	if ctx.Err() != nil {
		return &Error{Kind: ErrStepEnded, Reason: "the step ended during the request", Err: context.Cause(ctx)}
	}
	if s.ctx.Err() != nil {
		return &Error{Kind: ErrClosed, Reason: "the step's HTTP session was closed during the request", Err: err}
	}
	if errors.Is(context.Cause(rctx), errTotalTimeout) {
		return &Error{Kind: ErrNetwork, Reason: fmt.Sprintf("no complete response within the total timeout of %s", total), Err: err}
	}
	var he *Error
	if errors.As(err, &he) {
		return he
	}
	return transportError(err)
}

// transportError classifies an error of the transport itself. It has no
// types for a malformed response or oversized headers; their text is all
// there is.
func transportError(err error) *Error {
	msg := err.Error()
	switch {
	case strings.Contains(msg, "response headers exceeded"):
		return &Error{Kind: ErrLimit, Reason: "response header fields are over the grant's max_header_bytes", Err: err}
	case strings.Contains(msg, "malformed HTTP"):
		return &Error{Kind: ErrProtocol, Reason: "the response is not valid HTTP", Err: err}
	}
	return &Error{Kind: ErrNetwork, Reason: unwrapURLError(err).Error(), Err: err}
}

// unwrapURLError drops the `Get "http://…": ` the client prefixes, which
// the *Error says already.
func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// forbiddenHeaders are fields the transport sets, or that would change
// how the connection is used; a block may not set them.
var forbiddenHeaders = map[string]bool{
	"Host": true, "Content-Length": true, "Transfer-Encoding": true, "Connection": true,
	"Keep-Alive": true, "Te": true, "Trailer": true, "Upgrade": true, "Proxy-Connection": true,
}

// checkHeader validates a block's header fields and returns them in
// canonical form, with their size counted as name + ": " + value + CRLF.
func checkHeader(h http.Header) (http.Header, int64, error) {
	out := make(http.Header, len(h))
	var size int64
	for name, values := range h {
		if !validToken(name) {
			return nil, 0, fmt.Errorf("header name %q is not a valid token", name)
		}
		key := http.CanonicalHeaderKey(name)
		if forbiddenHeaders[key] || strings.HasPrefix(key, "Proxy-") {
			return nil, 0, fmt.Errorf("header %s is set by the host, not the block", key)
		}
		for _, v := range values {
			if strings.ContainsAny(v, "\r\n\x00") {
				return nil, 0, fmt.Errorf("value of header %s contains CR, LF or NUL", key)
			}
			size += int64(len(key) + len(v) + 4)
			out[key] = append(out[key], v)
		}
	}
	return out, size, nil
}

func validToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`"(),/:;<=>?@[\]{}`, c) >= 0 {
			return false
		}
	}
	return true
}

func (s *Session) logDenied(method, host, url string, r *rule, err error) {
	var e *Error
	if !errors.As(err, &e) {
		return
	}
	rule := e.Grant
	if rule == "" && r != nil {
		rule = r.Name
	}
	if rule == "" {
		rule = "none"
	}
	s.logger.Warn("http request denied", "method", method, "host", host, "rule", rule,
		"kind", kindName(e.Kind), "range", e.Range, "redirect", e.Redirect, "reason", e.Reason)
	if s.cfg.Audit != nil {
		grant := e.Grant
		if grant == "" && r != nil {
			grant = r.Name
		}
		s.cfg.Audit(capability.Event{Capability: Name, Op: "request", Target: redact(url), Grant: grant,
			Denied: true, Reason: kindName(e.Kind) + ": " + e.Reason,
			Fields: map[string]any{"method": method, "redirect": e.Redirect, "range": e.Range}})
	}
}

func (s *Session) logFailed(method, host, url string, e *Error, d time.Duration) {
	s.logger.Warn("http request failed", "method", method, "host", host, "rule", e.Grant,
		"kind", kindName(e.Kind), "code", e.Code().Name(), "class", e.Class().String(),
		"reason", e.Reason, "bytes", 0, "ms", d.Milliseconds())
	if s.cfg.Audit != nil {
		s.cfg.Audit(capability.Event{Capability: Name, Op: "request", Target: redact(url), Grant: e.Grant,
			Error: kindName(e.Kind) + ": " + e.Reason, Duration: d,
			Fields: map[string]any{"method": method, "code": e.Code().Name()}})
	}
}

// Body is a response body capped at its limit. Read returns io.EOF at
// the body's end, or an *Error matching ErrTruncated when the body goes
// on past the limit; it never reads more than one byte beyond it.
type Body struct {
	s      *Session
	rc     io.ReadCloser
	limit  int64
	ctx    context.Context // the step's
	rctx   context.Context // the request's
	total  time.Duration
	method string
	url    string
	grant  string

	mu        sync.Mutex
	n         int64
	truncated bool
	err       error // sticky
	closed    bool
	abort     func() // ends the request's context
	done      func() // releases the request and logs it, once
}

// Read reads body bytes.
func (b *Body) Read(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return 0, &Error{Kind: ErrClosed, Method: b.method, URL: redact(b.url), Grant: b.grant, Reason: "response body is closed"}
	}
	if b.err != nil {
		return 0, b.err
	}
	if len(p) == 0 {
		return 0, nil
	}
	if b.n >= b.limit {
		// One byte more says whether the body goes on.
		var one [1]byte
		k, err := io.ReadFull(b.rc, one[:])
		switch {
		case k > 0:
			b.truncated = true
			b.err = &Error{Kind: ErrTruncated, Method: b.method, URL: redact(b.url), Grant: b.grant,
				Reason: fmt.Sprintf("response body is longer than the %d bytes allowed", b.limit)}
			b.rc.Close() // the rest is not read
		case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
			b.err = io.EOF
		default:
			b.err = b.readError(err)
		}
		return 0, b.err
	}
	if int64(len(p)) > b.limit-b.n {
		p = p[:b.limit-b.n]
	}
	k, err := b.rc.Read(p)
	b.n += int64(k)
	switch {
	case err == nil:
	case errors.Is(err, io.EOF):
		b.err = io.EOF
	default:
		b.err = b.readError(err)
	}
	if k > 0 {
		return k, nil // an error comes with the next Read
	}
	return 0, b.err
}

func (b *Body) readError(err error) error {
	var e *Error
	switch {
	case b.ctx.Err() != nil:
		e = &Error{Kind: ErrStepEnded, Reason: "the step ended while reading the response body", Err: context.Cause(b.ctx)}
	case b.s.ctx.Err() != nil:
		e = &Error{Kind: ErrClosed, Reason: "the step's HTTP session was closed", Err: err}
	case errors.Is(context.Cause(b.rctx), errTotalTimeout):
		e = &Error{Kind: ErrNetwork, Reason: fmt.Sprintf("body not read within the total timeout of %s", b.total), Err: err}
	default:
		e = &Error{Kind: ErrNetwork, Reason: "reading the response body: " + err.Error(), Err: err}
	}
	e.Method, e.URL, e.Grant = b.method, redact(b.url), b.grant
	return e
}

// Truncated reports whether reading stopped at the limit with more body
// to come.
func (b *Body) Truncated() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.truncated
}

// N is how many body bytes were read.
func (b *Body) N() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.n
}

// Close releases the body: the connection, the grant's in-flight slot
// and the request's context. It is safe to call more than once, and from
// another goroutine than a blocked Read: it aborts the Read.
func (b *Body) Close() error {
	// Abort a Read blocked on the network before taking the lock it holds.
	b.abort()
	b.rc.Close()
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	b.mu.Unlock()
	b.done()
	return nil
}
