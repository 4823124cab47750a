//go:build !wasip1

package hostcall

import "github.com/blockhost/blockhost/abi"

// HTTPHost is the HTTP part of a native build's host, one method per host
// function of docs/abi.md §8. It is optional: a Host that does not
// implement it has no HTTP grants, and requests are denied.
type HTTPHost interface {
	HTTPRequest(head, body []byte) (handle, headLen uint32, r abi.Result)
	HTTPResponseHead(handle uint32, buf []byte) (uint32, abi.Result)
	HTTPBodyRead(handle uint32, buf []byte) (uint32, abi.Result)
	HTTPClose(handle uint32) abi.Result
	HTTPLastError(buf []byte) (uint32, abi.Result)
}

// httpHost returns the installed host's HTTP part, or nil with the result
// every call gets without one: unavailable outside a step, denied for a
// host without HTTP.
func httpHost() (HTTPHost, abi.Result) {
	h := host()
	if _, none := h.(noHost); none {
		return nil, abi.ResultUnavailable
	}
	if hh, ok := h.(HTTPHost); ok {
		return hh, abi.ResultOK
	}
	return nil, abi.ResultDenied
}

// HTTPRequest sends a request: head is an abi.HTTPRequest as JSON. It
// returns the response's handle and the length of its head.
func HTTPRequest(head, body []byte) (handle, headLen uint32, r abi.Result) {
	h, r := httpHost()
	if h == nil {
		return 0, 0, r
	}
	return h.HTTPRequest(head, body)
}

// HTTPResponseHead copies a response's head into buf and returns its
// length; when buf is too small it copies nothing and returns limit.
func HTTPResponseHead(handle uint32, buf []byte) (uint32, abi.Result) {
	h, _ := httpHost()
	if h == nil {
		return 0, abi.ResultNotFound
	}
	return h.HTTPResponseHead(handle, buf)
}

// HTTPBodyRead reads the next body bytes into buf; 0 is the end.
func HTTPBodyRead(handle uint32, buf []byte) (uint32, abi.Result) {
	h, _ := httpHost()
	if h == nil {
		return 0, abi.ResultNotFound
	}
	return h.HTTPBodyRead(handle, buf)
}

// HTTPClose releases a response.
func HTTPClose(handle uint32) abi.Result {
	h, _ := httpHost()
	if h == nil {
		return abi.ResultNotFound
	}
	return h.HTTPClose(handle)
}

// HTTPLastError copies the detail of the last failed HTTP call into buf
// and returns its length; when buf is too small it copies nothing and
// returns limit.
func HTTPLastError(buf []byte) (uint32, abi.Result) {
	h, r := httpHost()
	if h == nil {
		if r == abi.ResultUnavailable {
			return 0, r
		}
		return 0, abi.ResultNotFound
	}
	return h.HTTPLastError(buf)
}
