package host

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/blockhost/blockhost/abi"
	"github.com/blockhost/blockhost/host/engine"
	"github.com/blockhost/blockhost/host/httpcap"
)

// The HTTP capability's host functions (docs/abi.md §8). Requests go
// through an httpcap.Session made for the step from Grants.HTTP; without
// grants every request is denied.
func init() {
	registerHostFunctions(
		hostFunc(abi.FuncHTTPRequest, httpRequest),
		hostFunc(abi.FuncHTTPResponseHead, httpResponseHead),
		hostFunc(abi.FuncHTTPBodyRead, httpBodyRead),
		hostFunc(abi.FuncHTTPClose, httpClose),
		hostFunc(abi.FuncHTTPLastError, httpLastError),
	)
	registerOpener(openHTTP)
}

// httpReadChunk is the most body bytes one http_body_read copies.
const httpReadChunk = 64 << 10

// httpStep is one step's HTTP state. Like the rest of stepState it is
// used only by the goroutine running the guest.
type httpStep struct {
	// session is nil when the step has no HTTP grants.
	session   *httpcap.Session
	responses map[uint32]*httpResponse
	next      uint32
	// lastErr is the detail of the last http_* call that failed.
	lastErr *abi.Error
	buf     []byte
}

type httpResponse struct {
	resp *httpcap.Response
	head []byte // the abi.HTTPResponse as JSON
}

// openHTTP makes the step's session from its grants and closes it, with
// every response still open, when the guest is done.
func openHTTP(ctx context.Context, st *stepState, g Grants, _ *engine.RunConfig) *abi.Error {
	hs := &httpStep{responses: map[uint32]*httpResponse{}}
	st.http = hs
	if g.HTTP == nil {
		return nil
	}
	hs.session = httpcap.NewSession(ctx, g.HTTP, httpcap.SessionConfig{Logger: st.log()})
	st.closers = append(st.closers, func() {
		// A block that fails with http_error after a 429 or 503 carries
		// the server's Retry-After: the host saw it, so it can vouch for
		// it, which a value the guest reported could not.
		if e := st.guestErr; e != nil && e.Code == abi.CodeHTTPError && e.RetryAfterMS == nil {
			if d, ok := hs.session.LastRetryAfter(); ok {
				e.SetRetryAfter(d)
			}
		}
		hs.session.Close()
	})
	return nil
}

// httpState returns the step's HTTP state; a step prepared without the
// opener has none and is treated as having no grants.
func (st *stepState) httpState() *httpStep {
	if st.http == nil {
		st.http = &httpStep{responses: map[uint32]*httpResponse{}}
	}
	return st.http
}

// fail records the detail of a failed call and returns its result.
func (hs *httpStep) fail(r abi.Result, code abi.Code, format string, args ...any) abi.Result {
	hs.lastErr = abi.NewError(code, abi.ClassPermanent, fmt.Sprintf(format, args...))
	return r
}

// failed records an error from the session. Once the step is over the
// result is timeout or cancelled by its cause, whatever the session said.
func (hs *httpStep) failed(ctx context.Context, st *stepState, err error) abi.Result {
	if r, over := stepOver(ctx, st); over {
		return r
	}
	var e *httpcap.Error
	if !errors.As(err, &e) {
		return hs.fail(abi.ResultIO, abi.CodeInternalError, "%v", err)
	}
	hs.lastErr = e.ABI()
	return e.Result()
}

// stepOver reports, after a call that may have blocked, whether the step
// ended meanwhile, with the result enter would now give.
func stepOver(ctx context.Context, st *stepState) (abi.Result, bool) {
	if ctx.Err() == nil {
		return abi.ResultOK, false
	}
	st.sawEnd = true
	if isTimeout(ctx) {
		return abi.ResultTimeout, true
	}
	return abi.ResultCancelled, true
}

// httpRequest is http_request(head_ptr, head_len, body_ptr, body_len,
// resp_ptr) -> result.
func httpRequest(ctx context.Context, mem engine.Memory, stack []uint64) {
	st, r := enter(ctx)
	if r != abi.ResultOK {
		ret(stack, r)
		return
	}
	ret(stack, st.httpRequest(ctx, mem, uint32(stack[0]), uint32(stack[1]), uint32(stack[2]), uint32(stack[3]), uint32(stack[4])))
}

func (st *stepState) httpRequest(ctx context.Context, mem engine.Memory, headPtr, headLen, bodyPtr, bodyLen, respPtr uint32) abi.Result {
	hs := st.httpState()
	if mem == nil {
		return hs.fail(abi.ResultInvalid, abi.CodeInvalidInput, "the block has no memory")
	}
	if _, ok := mem.Read(respPtr, 8); !ok {
		return hs.fail(abi.ResultInvalid, abi.CodeInvalidInput, "resp_ptr is out of bounds")
	}
	if headLen > abi.MaxHTTPHead {
		return hs.fail(abi.ResultLimit, abi.CodeQuotaExceeded, "request head of %d bytes is over the %d allowed", headLen, abi.MaxHTTPHead)
	}
	headBytes, ok := mem.Read(headPtr, headLen)
	if !ok {
		return hs.fail(abi.ResultInvalid, abi.CodeInvalidInput, "request head is out of bounds")
	}
	body, ok := mem.Read(bodyPtr, bodyLen)
	if !ok {
		return hs.fail(abi.ResultInvalid, abi.CodeInvalidInput, "request body is out of bounds")
	}
	var head abi.HTTPRequest
	dec := json.NewDecoder(bytes.NewReader(headBytes))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&head); err != nil {
		return hs.fail(abi.ResultInvalid, abi.CodeInvalidInput, "request head is not a valid JSON request: %v", err)
	}
	if hs.session == nil {
		return hs.fail(abi.ResultDenied, abi.CodePermissionDenied, "no HTTP grants: this step may not use the network")
	}
	req := &httpcap.Request{
		Method: head.Method,
		URL:    head.URL,
		Header: http.Header(head.Headers),
		Timeouts: httpcap.Timeouts{
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
	resp, err := hs.session.Do(ctx, req)
	if err != nil {
		return hs.failed(ctx, st, err)
	}
	if r, over := stepOver(ctx, st); over {
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
		return hs.fail(abi.ResultIO, abi.CodeInternalError, "encoding the response head: %v", err)
	}
	hs.next++
	if hs.next == 0 {
		hs.next = 1
	}
	handle := hs.next
	hs.responses[handle] = &httpResponse{resp: resp, head: out}
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
func (hs *httpStep) response(handle uint32) (*httpResponse, abi.Result) {
	hr, ok := hs.responses[handle]
	if !ok {
		return nil, hs.fail(abi.ResultNotFound, abi.CodeInvalidInput, "no open response has handle %d", handle)
	}
	return hr, abi.ResultOK
}

// copyOut writes data to buf when it fits, and its length to nPtr in any
// case: ok, or limit with nothing copied when buf is too small.
func (hs *httpStep) copyOut(mem engine.Memory, data []byte, buf, bufLen, nPtr uint32) abi.Result {
	if mem == nil {
		return hs.fail(abi.ResultInvalid, abi.CodeInvalidInput, "the block has no memory")
	}
	if _, ok := mem.Read(nPtr, 4); !ok {
		return hs.fail(abi.ResultInvalid, abi.CodeInvalidInput, "n_ptr is out of bounds")
	}
	if uint64(bufLen) < uint64(len(data)) {
		mem.WriteUint32Le(nPtr, uint32(len(data)))
		return abi.ResultLimit
	}
	if !mem.Write(buf, data) {
		return hs.fail(abi.ResultInvalid, abi.CodeInvalidInput, "buffer is out of bounds")
	}
	mem.WriteUint32Le(nPtr, uint32(len(data)))
	return abi.ResultOK
}

// httpResponseHead is http_response_head(handle, buf_ptr, buf_len, n_ptr)
// -> result.
func httpResponseHead(ctx context.Context, mem engine.Memory, stack []uint64) {
	st, r := enter(ctx)
	if r != abi.ResultOK {
		ret(stack, r)
		return
	}
	hs := st.httpState()
	hr, r := hs.response(uint32(stack[0]))
	if r != abi.ResultOK {
		ret(stack, r)
		return
	}
	ret(stack, hs.copyOut(mem, hr.head, uint32(stack[1]), uint32(stack[2]), uint32(stack[3])))
}

// httpBodyRead is http_body_read(handle, buf_ptr, buf_len, n_ptr) ->
// result.
func httpBodyRead(ctx context.Context, mem engine.Memory, stack []uint64) {
	st, r := enter(ctx)
	if r != abi.ResultOK {
		ret(stack, r)
		return
	}
	ret(stack, st.httpBodyRead(ctx, mem, uint32(stack[0]), uint32(stack[1]), uint32(stack[2]), uint32(stack[3])))
}

func (st *stepState) httpBodyRead(ctx context.Context, mem engine.Memory, handle, buf, bufLen, nPtr uint32) abi.Result {
	hs := st.httpState()
	hr, r := hs.response(handle)
	if r != abi.ResultOK {
		return r
	}
	if mem == nil {
		return hs.fail(abi.ResultInvalid, abi.CodeInvalidInput, "the block has no memory")
	}
	if _, ok := mem.Read(nPtr, 4); !ok {
		return hs.fail(abi.ResultInvalid, abi.CodeInvalidInput, "n_ptr is out of bounds")
	}
	if _, ok := mem.Read(buf, bufLen); !ok || bufLen == 0 {
		return hs.fail(abi.ResultInvalid, abi.CodeInvalidInput, "buffer is empty or out of bounds")
	}
	if hs.buf == nil {
		hs.buf = make([]byte, httpReadChunk)
	}
	tmp := hs.buf[:min(bufLen, httpReadChunk)]
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
	return hs.failed(ctx, st, err)
}

// httpClose is http_close(handle) -> result.
func httpClose(ctx context.Context, _ engine.Memory, stack []uint64) {
	st, r := enter(ctx)
	if r != abi.ResultOK {
		ret(stack, r)
		return
	}
	hs := st.httpState()
	hr, r := hs.response(uint32(stack[0]))
	if r != abi.ResultOK {
		ret(stack, r)
		return
	}
	hr.resp.Body.Close()
	delete(hs.responses, uint32(stack[0]))
	ret(stack, abi.ResultOK)
}

// httpLastError is http_last_error(buf_ptr, buf_len, n_ptr) -> result.
func httpLastError(ctx context.Context, mem engine.Memory, stack []uint64) {
	st, r := enter(ctx)
	if r != abi.ResultOK {
		ret(stack, r)
		return
	}
	hs := st.httpState()
	if hs.lastErr == nil {
		ret(stack, abi.ResultNotFound)
		return
	}
	out, err := json.Marshal(hs.lastErr)
	if err != nil {
		ret(stack, abi.ResultIO)
		return
	}
	// Copying the detail out must not replace it.
	saved := hs.lastErr
	r = hs.copyOut(mem, out, uint32(stack[0]), uint32(stack[1]), uint32(stack[2]))
	hs.lastErr = saved
	ret(stack, r)
}
