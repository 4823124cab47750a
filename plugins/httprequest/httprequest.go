// Package httprequest is the built-in block http.request: it sends one
// HTTP request, as its input describes, under the step's HTTP grants,
// and returns the response's status, headers and body.
//
// It runs natively, in the host's process, but reaches the network only
// through host/httpcap with the step's grants, exactly as a WebAssembly
// block's http_request host call does: the same allowlist, address
// checks, timeouts, caps, error classes and logs.
//
// Input:
//
//	{
//	  "method": "POST",                          // default GET
//	  "url": "https://api.example.com/v1/items", // required
//	  "headers": {"Content-Type": "application/json", "X-Multi": ["a", "b"]},
//	  "body": "{\"name\":\"x\"}",               // or "body_base64"
//	  "timeouts": {"connect": "2s", "tls": "5s", "headers": "10s", "total": "30s"},
//	  "max_response_body": 65536
//	}
//
// Timeouts are Go durations or milliseconds and only shorten the grant's.
// Output:
//
//	{"status": 200, "headers": {"Content-Type": ["text/plain"]}, "body": "…",
//	 "truncated": false, "url": "https://…", "redirects": 0, "grant": "api"}
//
// with "body_base64" instead of "body" when the body is not UTF-8. The
// body is read up to the grant's max_response_body, and never past half
// the step's output limit, so the result always fits; past that cap it is
// cut and "truncated" is true. A status of 400 or more ends the step as
// error http_error — retryable for 408, 429, 500, 502, 503 and 504, with
// Retry-After for 429 and 503 — and keeps the output.
package httprequest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/blockhost/blockhost/abi"
	"github.com/blockhost/blockhost/host"
	"github.com/blockhost/blockhost/host/httpcap"
	"github.com/blockhost/blockhost/plugins"
)

// Name is the block's name.
const Name = "http.request"

func init() {
	plugins.Register(plugins.Plugin{
		Name:    Name,
		Summary: "send one HTTP request under the step's HTTP grants",
		Run:     Run,
	})
}

// Input is the block's input.
type Input struct {
	Method          string   `json:"method"`
	URL             string   `json:"url"`
	Headers         Headers  `json:"headers"`
	Body            *string  `json:"body"`
	BodyBase64      []byte   `json:"body_base64"`
	Timeouts        Timeouts `json:"timeouts"`
	MaxResponseBody int64    `json:"max_response_body"`
}

// Headers are header fields; each value is a string or a list of them.
type Headers map[string][]string

// UnmarshalJSON accepts "Name": "value" and "Name": ["v1", "v2"].
func (h *Headers) UnmarshalJSON(b []byte) error {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		return err
	}
	out := make(Headers, len(raw))
	for k, v := range raw {
		var one string
		if err := json.Unmarshal(v, &one); err == nil {
			out[k] = []string{one}
			continue
		}
		var many []string
		if err := json.Unmarshal(v, &many); err != nil {
			return fmt.Errorf("header %q: want a string or a list of strings", k)
		}
		out[k] = many
	}
	*h = out
	return nil
}

// Timeouts shorten the grant's timeouts.
type Timeouts struct {
	Connect Duration `json:"connect"`
	TLS     Duration `json:"tls"`
	Headers Duration `json:"headers"`
	Total   Duration `json:"total"`
}

// Duration is a Go duration string ("1.5s") or a number of milliseconds.
type Duration time.Duration

// UnmarshalJSON reads a duration string or milliseconds.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		v, err := time.ParseDuration(s)
		if err != nil || v < 0 {
			return fmt.Errorf("%q is not a duration such as \"2s\"", s)
		}
		*d = Duration(v)
		return nil
	}
	var ms float64
	if err := json.Unmarshal(b, &ms); err != nil || ms < 0 {
		return fmt.Errorf("%s is not a duration: use a string such as \"2s\" or milliseconds", b)
	}
	*d = Duration(time.Duration(ms * float64(time.Millisecond)))
	return nil
}

// Output is the block's output.
type Output struct {
	Status     int                 `json:"status"`
	Headers    map[string][]string `json:"headers"`
	Body       *string             `json:"body,omitempty"`
	BodyBase64 []byte              `json:"body_base64,omitempty"`
	Truncated  bool                `json:"truncated"`
	URL        string              `json:"url"`
	Redirects  int                 `json:"redirects"`
	Grant      string              `json:"grant"`
}

// Run is the block's body, a host.NativeFunc.
func Run(ctx context.Context, call *host.Call) ([]byte, error) {
	var in Input
	dec := json.NewDecoder(bytes.NewReader(call.Step.Input))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&in); err != nil {
		return nil, abi.NewError(abi.CodeInvalidInput, abi.ClassPermanent, "http.request: input is not a valid request: "+err.Error())
	}
	if in.URL == "" {
		return nil, abi.NewError(abi.CodeMissingRequiredField, abi.ClassPermanent, `http.request: input has no "url"`)
	}
	body := in.BodyBase64
	if in.Body != nil {
		if in.BodyBase64 != nil {
			return nil, abi.NewError(abi.CodeInvalidInput, abi.ClassPermanent, `http.request: give "body" or "body_base64", not both`)
		}
		body = []byte(*in.Body)
	}
	limit := int64(call.Step.Limits.Output / 2)
	if in.MaxResponseBody > 0 && in.MaxResponseBody < limit {
		limit = in.MaxResponseBody
	}

	s := httpcap.NewSession(ctx, call.Step.Grants.HTTP, httpcap.SessionConfig{Logger: call.Logger, Audit: call.Audit})
	defer s.Close()
	resp, err := s.Do(ctx, &httpcap.Request{
		Method: in.Method,
		URL:    in.URL,
		Header: http.Header(in.Headers),
		Body:   body,
		Timeouts: httpcap.Timeouts{
			Connect: time.Duration(in.Timeouts.Connect),
			TLS:     time.Duration(in.Timeouts.TLS),
			Header:  time.Duration(in.Timeouts.Headers),
			Total:   time.Duration(in.Timeouts.Total),
		},
		MaxResponseBody: limit,
	})
	if err != nil {
		return nil, asABI(err)
	}
	defer resp.Body.Close()
	// One buffer of the size the body will have, at most the cap (and
	// 4 MiB before it is known to be needed), so reading does not leave a
	// trail of outgrown copies.
	size := min(resp.BodyLimit, 4<<20)
	if n := resp.ContentLength; n >= 0 && n < size {
		size = n
	}
	var buf bytes.Buffer
	buf.Grow(int(size) + bytes.MinRead)
	_, err = buf.ReadFrom(resp.Body)
	data := buf.Bytes()
	if err != nil && !errors.Is(err, httpcap.ErrTruncated) {
		return nil, asABI(err)
	}
	out := Output{
		Status:    resp.StatusCode,
		Headers:   resp.Header,
		Truncated: errors.Is(err, httpcap.ErrTruncated),
		URL:       resp.URL,
		Redirects: resp.Redirects,
		Grant:     resp.Grant,
	}
	if utf8.Valid(data) {
		text := string(data)
		out.Body = &text
	} else {
		out.BodyBase64 = data
	}
	b, err := json.Marshal(out)
	if err != nil {
		return nil, abi.NewError(abi.CodeInternalError, abi.ClassPermanent, "http.request: encoding the output: "+err.Error())
	}
	if e := resp.Err(); e != nil {
		e.Message = "http.request: " + e.Message
		return b, e
	}
	return b, nil
}

// asABI turns a session error into the step's error.
func asABI(err error) error {
	var e *httpcap.Error
	if errors.As(err, &e) {
		return e.ABI()
	}
	return abi.NewError(abi.CodeInternalError, abi.ClassPermanent, "http.request: "+strconv.Quote(err.Error()))
}
