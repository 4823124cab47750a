package abi

import (
	"strconv"
	"strings"
	"time"
)

// Host functions of the HTTP capability (docs/abi.md §8). Each returns an
// i32 Result.
const (
	// FuncHTTPRequest(head_ptr, head_len, body_ptr, body_len, resp_ptr)
	// -> result sends a request: head is an HTTPRequest as JSON, body the
	// raw request body. On ok it writes, at resp_ptr, the response's handle
	// (u32) and the length of its head (u32).
	FuncHTTPRequest = "http_request"
	// FuncHTTPResponseHead(handle, buf_ptr, buf_len, n_ptr) -> result
	// writes the response's head, an HTTPResponse as JSON.
	FuncHTTPResponseHead = "http_response_head"
	// FuncHTTPBodyRead(handle, buf_ptr, buf_len, n_ptr) -> result reads
	// the next bytes of the response body; a count of 0 is the end.
	FuncHTTPBodyRead = "http_body_read"
	// FuncHTTPClose(handle) -> result releases a response.
	FuncHTTPClose = "http_close"
	// FuncHTTPLastError(buf_ptr, buf_len, n_ptr) -> result writes the
	// detail of the step's last failed HTTP call, an Error as JSON.
	FuncHTTPLastError = "http_last_error"
)

// MaxHTTPHead is the largest request head, in bytes, http_request
// accepts; a longer one is refused with ResultLimit.
const MaxHTTPHead = 1 << 20

// HTTPRequest is the head of a request a block sends with http_request.
type HTTPRequest struct {
	// Method is the request method, such as "GET"; empty means GET.
	Method string `json:"method,omitempty"`
	// URL is the absolute http or https URL.
	URL string `json:"url"`
	// Headers are the request's header fields, each name with its values
	// in order.
	Headers map[string][]string `json:"headers,omitempty"`
	// Timeouts shorten the grant's timeouts for this request; they never
	// lengthen them.
	Timeouts HTTPTimeouts `json:"timeouts,omitzero"`
	// MaxResponseBody lowers the grant's response body cap for this
	// request; 0 keeps the grant's.
	MaxResponseBody int64 `json:"max_response_body,omitempty"`
}

// HTTPTimeouts are a request's timeouts in milliseconds; 0 means the
// grant's.
type HTTPTimeouts struct {
	// ConnectMS bounds DNS resolution and the TCP connection.
	ConnectMS int64 `json:"connect_ms,omitempty"`
	// TLSMS bounds the TLS handshake.
	TLSMS int64 `json:"tls_ms,omitempty"`
	// HeadersMS bounds the wait for the response's headers once the
	// request is sent.
	HeadersMS int64 `json:"headers_ms,omitempty"`
	// TotalMS bounds the whole request, reading the body included.
	TotalMS int64 `json:"total_ms,omitempty"`
}

// HTTPResponse is the head of a response, as http_response_head writes
// it.
type HTTPResponse struct {
	// Status is the HTTP status code, such as 200.
	Status int `json:"status"`
	// Headers are the response's header fields.
	Headers map[string][]string `json:"headers"`
	// URL is the URL that answered: the request's, or the last redirect's.
	URL string `json:"url"`
	// Redirects counts the redirects followed.
	Redirects int `json:"redirects"`
	// ContentLength is the body's length as the server announced it, or
	// -1 when it did not.
	ContentLength int64 `json:"content_length"`
	// BodyLimit is the most body bytes http_body_read delivers; past it
	// the body is truncated.
	BodyLimit int64 `json:"body_limit"`
	// Grant names the grant that allowed the request.
	Grant string `json:"grant"`
	// Error is set for a status of 400 or more: code http_error, the class
	// HTTPStatusClass gives, and Retry-After for 429 and 503.
	Error *Error `json:"error,omitempty"`
}

// HTTPStatusClass is the class of a failed HTTP status: 408, 429, 500,
// 502, 503 and 504 may succeed when tried again; every other status of 400
// or more will not.
func HTTPStatusClass(status int) Class {
	switch status {
	case 408, 429, 500, 502, 503, 504:
		return ClassRetryable
	}
	return ClassPermanent
}

// HTTPStatusCarriesRetryAfter reports whether a Retry-After header of a
// response with this status is carried into its error: 429 and 503.
func HTTPStatusCarriesRetryAfter(status int) bool { return status == 429 || status == 503 }

// MaxRetryAfter caps the wait a Retry-After header can ask for.
const MaxRetryAfter = 24 * time.Hour

// ParseRetryAfter reads a Retry-After header value — delay seconds or an
// HTTP date — as a wait from now, capped at MaxRetryAfter; a date in the
// past is a wait of 0. ok is false for a value that is neither.
func ParseRetryAfter(v string, now time.Time) (d time.Duration, ok bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if n, err := strconv.ParseUint(v, 10, 64); err == nil {
		if n > uint64(MaxRetryAfter/time.Second) {
			return MaxRetryAfter, true
		}
		return time.Duration(n) * time.Second, true
	}
	// The three date forms of RFC 9110 §5.6.7.
	for _, layout := range []string{time.RFC1123, "Monday, 02-Jan-06 15:04:05 MST", time.ANSIC} {
		if t, err := time.Parse(layout, v); err == nil {
			return min(max(t.Sub(now), 0), MaxRetryAfter), true
		}
	}
	return 0, false
}
