package httpcap

import (
	"errors"
	"fmt"
	"time"

	"github.com/blockhost/blockhost/abi"
)

// Kinds of failure. Every error a Session returns is an *Error that
// matches exactly one of them with errors.Is; the table in
// docs/capabilities.md gives each one's code, class and host call result.
var (
	// ErrDenied: no grant allows the request, or it would reach an address
	// in a special-purpose range its grant does not list, or the URL
	// carries userinfo. permission_denied, permanent.
	ErrDenied = errors.New("httpcap: denied")
	// ErrInvalid: the request is malformed — a URL that does not parse or
	// is not absolute, a scheme other than http and https, a bad method or
	// header. invalid_input, permanent.
	ErrInvalid = errors.New("httpcap: invalid request")
	// ErrLimit: the request is over one of its grant's caps (request body,
	// header bytes, requests in flight), or the response headers are.
	// quota_exceeded, permanent.
	ErrLimit = errors.New("httpcap: limit")
	// ErrTruncated: the response body is longer than its cap; reading
	// stopped there. quota_exceeded, permanent.
	ErrTruncated = errors.New("httpcap: response body truncated")
	// ErrConnectTimeout: DNS resolution and the TCP connection, or the TLS
	// handshake, did not finish in time. connection_timeout, retryable.
	ErrConnectTimeout = errors.New("httpcap: connection timeout")
	// ErrNetwork: the connection failed — refused, reset, closed early,
	// the name did not resolve — or the response did not come in time.
	// network_error, retryable.
	ErrNetwork = errors.New("httpcap: network error")
	// ErrTLS: the server's certificate was not accepted. network_error,
	// permanent.
	ErrTLS = errors.New("httpcap: TLS failure")
	// ErrProtocol: the server's response is not valid HTTP. network_error,
	// permanent.
	ErrProtocol = errors.New("httpcap: protocol error")
	// ErrRedirect: too many redirects, or a redirect loop. http_error,
	// permanent.
	ErrRedirect = errors.New("httpcap: redirect failure")
	// ErrStepEnded: the step's context ended (deadline or cancellation)
	// while the request was in flight; the step's own status says which.
	ErrStepEnded = errors.New("httpcap: step ended")
	// ErrClosed: the session was closed.
	ErrClosed = errors.New("httpcap: session closed")
)

// kindInfo is what each kind means to the step contract.
var kindInfo = map[error]struct {
	code   abi.Code
	class  abi.Class
	result abi.Result
}{
	ErrDenied:         {abi.CodePermissionDenied, abi.ClassPermanent, abi.ResultDenied},
	ErrInvalid:        {abi.CodeInvalidInput, abi.ClassPermanent, abi.ResultInvalid},
	ErrLimit:          {abi.CodeQuotaExceeded, abi.ClassPermanent, abi.ResultLimit},
	ErrTruncated:      {abi.CodeQuotaExceeded, abi.ClassPermanent, abi.ResultLimit},
	ErrConnectTimeout: {abi.CodeConnectionTimeout, abi.ClassRetryable, abi.ResultUnavailable},
	ErrNetwork:        {abi.CodeNetworkError, abi.ClassRetryable, abi.ResultUnavailable},
	ErrTLS:            {abi.CodeNetworkError, abi.ClassPermanent, abi.ResultIO},
	ErrProtocol:       {abi.CodeNetworkError, abi.ClassPermanent, abi.ResultIO},
	ErrRedirect:       {abi.CodeHTTPError, abi.ClassPermanent, abi.ResultIO},
	ErrStepEnded:      {abi.CodeCancelledByUser, abi.ClassPermanent, abi.ResultCancelled},
	ErrClosed:         {abi.CodeInternalError, abi.ClassPermanent, abi.ResultUnavailable},
}

// Error is a request that failed, or a response body that could not be
// read to its end.
type Error struct {
	// Kind is the sentinel the error matches: ErrDenied, ErrNetwork, ….
	Kind error
	// Method and URL are the request's; URL is the hop that failed when
	// a redirect was followed.
	Method, URL string
	// Grant names the grant involved, or is empty when no grant matched.
	Grant string
	// Range names the special-purpose address range of a denied address,
	// such as "loopback".
	Range string
	// Reason says what happened, for people.
	Reason string
	// Redirect is set when the failure is on a redirect hop rather than
	// the request the block sent; the message then says "redirect:".
	Redirect bool
	// Err is the underlying error, if any.
	Err error

	logged bool // the denial is in the log already
}

func newError(kind error, method, url, reason string, err error) *Error {
	return &Error{Kind: kind, Method: method, URL: url, Reason: reason, Err: err}
}

// Error returns, for example, "GET http://10.0.0.1/: denied: 10.0.0.1 is in
// the private range …".
func (e *Error) Error() string {
	s := kindName(e.Kind)
	if e.URL != "" {
		s = e.Method + " " + e.URL + ": " + s
	}
	if e.Redirect {
		s += ": redirect"
	}
	if e.Reason != "" {
		s += ": " + e.Reason
	}
	return s
}

// Is reports whether target is e's kind.
func (e *Error) Is(target error) bool { return target == e.Kind }

// Unwrap returns the underlying error.
func (e *Error) Unwrap() error { return e.Err }

// Code is the step error code of the failure.
func (e *Error) Code() abi.Code { return kindInfo[e.Kind].code }

// Class says whether trying again may succeed.
func (e *Error) Class() abi.Class { return kindInfo[e.Kind].class }

// Result is the host call result that reports the failure to a guest.
// For ErrStepEnded the host answers timeout or cancelled by the step's
// cause instead.
func (e *Error) Result() abi.Result { return kindInfo[e.Kind].result }

// ABI returns the failure as a step error.
func (e *Error) ABI() *abi.Error {
	return abi.NewError(e.Code(), e.Class(), e.Error())
}

func kindName(kind error) string {
	switch kind {
	case ErrDenied:
		return "denied"
	case ErrInvalid:
		return "invalid request"
	case ErrLimit:
		return "over a limit"
	case ErrTruncated:
		return "response body truncated"
	case ErrConnectTimeout:
		return "connection timeout"
	case ErrNetwork:
		return "network error"
	case ErrTLS:
		return "TLS failure"
	case ErrProtocol:
		return "protocol error"
	case ErrRedirect:
		return "redirect failure"
	case ErrStepEnded:
		return "step ended"
	case ErrClosed:
		return "session closed"
	}
	return "error"
}

// StatusError returns the step error for an HTTP response status of 400 or
// more, and nil below 400: http_error, retryable for 408, 429, 500, 502,
// 503 and 504 (abi.HTTPStatusClass) and permanent otherwise. For 429 and
// 503 a valid Retry-After value is carried in RetryAfterMS.
func StatusError(status int, statusText, retryAfter string, now time.Time) *abi.Error {
	if status < 400 {
		return nil
	}
	msg := fmt.Sprintf("HTTP %d", status)
	if statusText != "" {
		msg += " " + statusText
	}
	e := abi.NewError(abi.CodeHTTPError, abi.HTTPStatusClass(status), msg)
	if abi.HTTPStatusCarriesRetryAfter(status) {
		if d, ok := abi.ParseRetryAfter(retryAfter, now); ok {
			e.SetRetryAfter(d)
			e.Message += fmt.Sprintf(" (Retry-After %s)", d)
		}
	}
	return e
}
