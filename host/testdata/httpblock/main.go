// Command httpblock is a test block that sends one HTTP request through
// the SDK, as its input describes, and reports what happened. Tests run
// it on every engine against loopback servers.
package main

import (
	"context"
	"errors"
	"io"
	"strings"
	"time"

	"github.com/blockhost/blockhost/abi"
	"github.com/blockhost/blockhost/sdk"
)

type input struct {
	Method           string              `json:"method"`
	URL              string              `json:"url"`
	Headers          map[string][]string `json:"headers"`
	Body             string              `json:"body"`
	MaxResponseBody  int64               `json:"max_response_body"`
	ConnectTimeoutMS int64               `json:"connect_timeout_ms"`
	// Return makes the block fail with the request's error, or with the
	// response's status error, instead of describing it.
	Return bool `json:"return"`
	// Leak leaves the response open, for the host to close.
	Leak bool `json:"leak"`
}

type output struct {
	Status    int                 `json:"status,omitempty"`
	Headers   map[string][]string `json:"headers,omitempty"`
	Body      string              `json:"body,omitempty"`
	BodyBytes int                 `json:"body_bytes"`
	Truncated bool                `json:"truncated,omitempty"`
	Redirects int                 `json:"redirects,omitempty"`
	Grant     string              `json:"grant,omitempty"`
	Err       *errInfo            `json:"err,omitempty"`
	ReadErr   *errInfo            `json:"read_err,omitempty"`
}

type errInfo struct {
	Is           []string  `json:"is"`
	Code         abi.Code  `json:"code"`
	Class        abi.Class `json:"class"`
	Message      string    `json:"message"`
	RetryAfterMS int64     `json:"retry_after_ms,omitempty"`
}

var sentinels = map[string]error{
	"denied": sdk.ErrDenied, "invalid": sdk.ErrInvalid, "limit": sdk.ErrLimit, "unavailable": sdk.ErrUnavailable,
	"io": sdk.ErrIO, "timeout": sdk.ErrTimeout, "cancelled": sdk.ErrCancelled, "network": sdk.ErrNetwork,
	"connection_timeout": sdk.ErrConnectionTimeout, "http_status": sdk.ErrHTTPStatus, "truncated": sdk.ErrTruncated,
}

func describe(err error) *errInfo {
	if err == nil {
		return nil
	}
	info := &errInfo{Message: err.Error()}
	for name, s := range sentinels {
		if errors.Is(err, s) {
			info.Is = append(info.Is, name)
		}
	}
	var he *sdk.HTTPError
	if errors.As(err, &he) {
		info.Code, info.Class, info.RetryAfterMS = he.Code, he.Class, he.RetryAfter.Milliseconds()
	}
	return info
}

func run(ctx context.Context, in input) (output, error) {
	req := sdk.NewHTTPRequest(in.Method, in.URL, nil)
	if in.Body != "" {
		req.Body = strings.NewReader(in.Body)
	}
	for k, vs := range in.Headers {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	req.MaxResponseBody = in.MaxResponseBody
	req.ConnectTimeout = time.Duration(in.ConnectTimeoutMS) * time.Millisecond
	resp, err := sdk.HTTPDo(ctx, req)
	if err != nil {
		if in.Return {
			return output{}, err
		}
		return output{Err: describe(err)}, nil
	}
	out := output{Status: resp.StatusCode, Headers: resp.Header, Redirects: resp.Redirects, Grant: resp.Grant}
	if in.Leak {
		return out, nil
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	out.BodyBytes = len(body)
	if len(body) <= 4096 {
		out.Body = string(body)
	}
	out.Truncated = errors.Is(err, sdk.ErrTruncated)
	out.ReadErr = describe(err)
	if in.Return {
		if err != nil {
			return output{}, err
		}
		if err := resp.StatusError(); err != nil {
			return output{}, err
		}
	}
	return out, nil
}

func main() { sdk.RunJSON(run) }
