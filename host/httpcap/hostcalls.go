package httpcap

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"time"

	"github.com/blockhost/blockhost/abi"
	"github.com/blockhost/blockhost/host/capability"
	"github.com/blockhost/blockhost/host/engine"
)

// Name is the capability's name in grants, audit records and abi.Functions.
const Name = abi.CapabilityHTTP

func init() { capability.Register(Capability{}) }

// Capability is the HTTP capability as the host sees it (host/capability):
// the http_* host functions of docs/abi.md §8, served for each step by a
// Session made from the step's *Policy; without one every request is
// denied.
type Capability struct{}

var _ capability.Capability = Capability{}

// Name returns "http".
func (Capability) Name() string { return Name }

// Functions returns the http_* host functions.
func (Capability) Functions() []capability.Func {
	return []capability.Func{
		capability.Fn(abi.FuncHTTPRequest, (*stepState).request),
		capability.Fn(abi.FuncHTTPResponseHead, (*stepState).responseHead),
		capability.Fn(abi.FuncHTTPBodyRead, (*stepState).bodyRead),
		capability.Fn(abi.FuncHTTPClose, (*stepState).close),
		capability.LastErrorFunc(abi.FuncHTTPLastError, func(s *stepState) *capability.LastError { return &s.last }),
	}
}

// Open makes the step's session from grant, a *Policy or nil. The session
// is closed, with every response still open, when the guest is done.
func (Capability) Open(ctx context.Context, step capability.Step, grant any) (capability.State, error) {
	s := &stepState{step: step, responses: map[uint32]*openResponse{}}
	switch p := grant.(type) {
	case nil:
	case *Policy:
		if p != nil {
			s.session = NewSession(ctx, p, SessionConfig{Logger: step.Logger()})
		}
	default:
		return nil, capability.ErrNoGrant
	}
	return s, nil
}

// SessionOf returns the session of a step's HTTP state, or nil when the
// step has no HTTP grants; the host's Extism layer sends the plugin's
// requests through it.
func SessionOf(s capability.State) *Session {
	if hs, ok := s.(*stepState); ok {
		return hs.session
	}
	return nil
}

// httpReadChunk is the most body bytes one http_body_read copies.
const httpReadChunk = 64 << 10

// stepState is one step's HTTP state.
type stepState struct {
	step capability.Step
	// session is nil when the step has no HTTP grants.
	session   *Session
	responses map[uint32]*openResponse
	next      uint32
	last      capability.LastError
	buf       []byte
}

type openResponse struct {
	resp *Response
	head []byte // the abi.HTTPResponse as JSON
}

// Close closes the session. A block that fails with http_error after a
// 429 or 503 carries the server's Retry-After: the host saw it, so it can
// vouch for it, which a value the guest reported could not.
func (s *stepState) Close() {
	if s.session == nil {
		return
	}
	if e := s.step.Err(); e != nil && e.Code == abi.CodeHTTPError && e.RetryAfterMS == nil {
		if d, ok := s.session.LastRetryAfter(); ok {
			e.SetRetryAfter(d)
		}
	}
	s.session.Close()
}

// failed records an error from the session. Once the step is over the
// result is timeout or cancelled by its cause, whatever the session said.
func (s *stepState) failed(ctx context.Context, err error) abi.Result {
	if r, over := s.step.Over(ctx); over {
		return r
	}
	var e *Error
	if !errors.As(err, &e) {
		return s.last.Fail(abi.ResultIO, abi.CodeInternalError, "%v", err)
	}
	s.last.Set(e.ABI())
	return e.Result()
}

// request is http_request(head_ptr, head_len, body_ptr, body_len,
// resp_ptr) -> result.
func (s *stepState) request(ctx context.Context, mem engine.Memory, args []uint64) abi.Result {
	headPtr, headLen, bodyPtr, bodyLen, respPtr := uint32(args[0]), uint32(args[1]), uint32(args[2]), uint32(args[3]), uint32(args[4])
	if mem == nil {
		return s.last.Invalid("the block has no memory")
	}
	if _, ok := mem.Read(respPtr, 8); !ok {
		return s.last.Invalid("resp_ptr is out of bounds")
	}
	if headLen > abi.MaxHTTPHead {
		return s.last.Fail(abi.ResultLimit, abi.CodeQuotaExceeded, "request head of %d bytes is over the %d allowed", headLen, abi.MaxHTTPHead)
	}
	headBytes, ok := mem.Read(headPtr, headLen)
	if !ok {
		return s.last.Invalid("request head is out of bounds")
	}
	body, ok := mem.Read(bodyPtr, bodyLen)
	if !ok {
		return s.last.Invalid("request body is out of bounds")
	}
	var head abi.HTTPRequest
	dec := json.NewDecoder(bytes.NewReader(headBytes))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&head); err != nil {
		return s.last.Fail(abi.ResultInvalid, abi.CodeInvalidInput, "request head is not a valid JSON request: %v", err)
	}
	if s.session == nil {
		return s.last.Fail(abi.ResultDenied, abi.CodePermissionDenied, "no HTTP grants: this step may not use the network")
	}
	req := &Request{
		Method: head.Method,
		URL:    head.URL,
		Header: http.Header(head.Headers),
		Timeouts: Timeouts{
			Connect: msDuration(head.Timeouts.ConnectMS),
			TLS:     msDuration(head.Timeouts.TLSMS),
			Header:  msDuration(head.Timeouts.HeadersMS),
			Total:   msDuration(head.Timeouts.TotalMS),
		},
		MaxResponseBody: head.MaxResponseBody,
	}
	if bodyLen > 0 {
		// The transport may still be sending the body after the call
		// returns, while the guest reuses its memory: send a copy.
		req.Body = bytes.Clone(body)
	}
	resp, err := s.session.Do(ctx, req)
	if err != nil {
		return s.failed(ctx, err)
	}
	if r, over := s.step.Over(ctx); over {
		resp.Body.Close()
		return r
	}
	out, err := json.Marshal(abi.HTTPResponse{
		Status:        resp.StatusCode,
		Headers:       resp.Header,
		URL:           resp.URL,
		Redirects:     resp.Redirects,
		ContentLength: resp.ContentLength,
		BodyLimit:     resp.BodyLimit,
		Grant:         resp.Grant,
		Error:         resp.Err(),
	})
	if err != nil {
		resp.Body.Close()
		return s.last.Fail(abi.ResultIO, abi.CodeInternalError, "encoding the response head: %v", err)
	}
	s.next++
	if s.next == 0 {
		s.next = 1
	}
	handle := s.next
	s.responses[handle] = &openResponse{resp: resp, head: out}
	mem.WriteUint32Le(respPtr, handle)
	mem.WriteUint32Le(respPtr+4, uint32(len(out)))
	return abi.ResultOK
}

func msDuration(ms int64) time.Duration {
	if ms <= 0 {
		return 0
	}
	return time.Duration(ms) * time.Millisecond
}

// response returns the open response with the handle.
func (s *stepState) response(handle uint32) (*openResponse, abi.Result) {
	hr, ok := s.responses[handle]
	if !ok {
		return nil, s.last.Fail(abi.ResultNotFound, abi.CodeInvalidInput, "no open response has handle %d", handle)
	}
	return hr, abi.ResultOK
}

// responseHead is http_response_head(handle, buf_ptr, buf_len, n_ptr) ->
// result.
func (s *stepState) responseHead(_ context.Context, mem engine.Memory, args []uint64) abi.Result {
	hr, r := s.response(uint32(args[0]))
	if r != abi.ResultOK {
		return r
	}
	r, problem := capability.CopyOut(mem, hr.head, uint32(args[1]), uint32(args[2]), uint32(args[3]))
	if r == abi.ResultInvalid {
		s.last.Invalid(problem)
	}
	return r
}

// bodyRead is http_body_read(handle, buf_ptr, buf_len, n_ptr) -> result.
func (s *stepState) bodyRead(ctx context.Context, mem engine.Memory, args []uint64) abi.Result {
	handle, buf, bufLen, nPtr := uint32(args[0]), uint32(args[1]), uint32(args[2]), uint32(args[3])
	hr, r := s.response(handle)
	if r != abi.ResultOK {
		return r
	}
	if mem == nil {
		return s.last.Invalid("the block has no memory")
	}
	if _, ok := mem.Read(nPtr, 4); !ok {
		return s.last.Invalid("n_ptr is out of bounds")
	}
	if _, ok := mem.Read(buf, bufLen); !ok || bufLen == 0 {
		return s.last.Invalid("buffer is empty or out of bounds")
	}
	if s.buf == nil {
		s.buf = make([]byte, httpReadChunk)
	}
	tmp := s.buf[:min(bufLen, httpReadChunk)]
	var (
		n   int
		err error
	)
	for n == 0 && err == nil {
		n, err = hr.resp.Body.Read(tmp)
	}
	if n > 0 {
		mem.Write(buf, tmp[:n])
		mem.WriteUint32Le(nPtr, uint32(n))
		return abi.ResultOK
	}
	mem.WriteUint32Le(nPtr, 0)
	if errors.Is(err, io.EOF) {
		return abi.ResultOK
	}
	return s.failed(ctx, err)
}

// close is http_close(handle) -> result.
func (s *stepState) close(_ context.Context, _ engine.Memory, args []uint64) abi.Result {
	hr, r := s.response(uint32(args[0]))
	if r != abi.ResultOK {
		return r
	}
	hr.resp.Body.Close()
	delete(s.responses, uint32(args[0]))
	return abi.ResultOK
}
