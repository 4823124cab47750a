package extism

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"

	"github.com/blockhost/blockhost/abi"
	"github.com/blockhost/blockhost/host/httpcap"
)

// httpRequest is the JSON an Extism PDK passes to http_request. Field
// names match case-insensitively, as they do for Extism's own decoder.
type httpRequest struct {
	URL     string            `json:"url"`
	Method  string            `json:"method"`
	Headers map[string]string `json:"headers"`
}

// hHTTPRequest is http_request(request, body) -> response body: the
// request goes through the step's HTTP session, so the HTTP capability's
// grants decide whether it is sent at all. A denied or failed request
// stops the plugin with the capability's error, as Extism stops it; a
// response of any status is an answer.
func (c *Call) hHTTPRequest(ctx context.Context, stack []uint64) {
	c.status, c.headers = 0, nil
	head := c.read(stack[0], "http_request request")
	c.blocks.release(stack[0])
	var req httpRequest
	if err := json.Unmarshal(head, &req); err != nil {
		trap("http_request: the request is not valid JSON: %v", err)
	}
	var body []byte
	if stack[1] != 0 {
		body = c.read(stack[1], "http_request body")
		c.blocks.release(stack[1])
	}
	method := strings.ToUpper(req.Method)
	if method == "" {
		method = http.MethodGet
	}
	if c.cfg.HTTP == nil {
		c.fail(abi.NewError(abi.CodePermissionDenied, abi.ClassPermanent,
			"HTTP request "+method+" "+redact(req.URL)+" denied: no HTTP grants, this step may not use the network"))
	}
	header := make(http.Header, len(req.Headers))
	for k, v := range req.Headers {
		header.Set(k, v)
	}
	resp, err := c.cfg.HTTP.Do(ctx, &httpcap.Request{Method: method, URL: req.URL, Header: header, Body: body})
	if err != nil {
		c.httpFailed(ctx, err)
	}
	data, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		c.httpFailed(ctx, err)
	}
	c.status, c.headers = int32(resp.StatusCode), headerMap(resp.Header)
	if len(data) == 0 {
		stack[0] = 0
		return
	}
	stack[0] = c.put(data)
}

// httpFailed stops the plugin after a failed request: as interrupted once
// the step is over, else with the capability's error.
func (c *Call) httpFailed(ctx context.Context, err error) {
	if ctx.Err() != nil {
		panic(stepOver)
	}
	if e, ok := errors.AsType[*httpcap.Error](err); ok {
		c.fail(e.ABI())
	}
	c.fail(abi.NewError(abi.CodeInternalError, abi.ClassPermanent, "HTTP request: "+err.Error()))
}

func (c *Call) hHTTPStatusCode(_ context.Context, stack []uint64) {
	stack[0] = uint64(uint32(c.status))
}

// hHTTPHeaders answers the last response's headers as a JSON object in a
// new block; "{}" before any response.
func (c *Call) hHTTPHeaders(_ context.Context, stack []uint64) {
	h := c.headers
	if h == nil {
		h = map[string]string{}
	}
	data, err := json.Marshal(h)
	if err != nil {
		trap("http_headers: %v", err)
	}
	stack[0] = c.put(data)
}

// redact drops a URL's query and user information from messages: they
// may carry secrets.
func redact(raw string) string {
	if i := strings.IndexAny(raw, "?#"); i >= 0 {
		raw = raw[:i]
	}
	if scheme, rest, ok := strings.Cut(raw, "://"); ok {
		if at := strings.LastIndex(rest, "@"); at >= 0 {
			if slash := strings.Index(rest, "/"); slash < 0 || at < slash {
				rest = rest[at+1:]
			}
		}
		raw = scheme + "://" + rest
	}
	return raw
}
