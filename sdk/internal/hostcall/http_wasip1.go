//go:build wasip1

package hostcall

import (
	"unsafe"

	"github.com/blockhost/blockhost/abi"
)

// The HTTP capability's host functions, docs/abi.md §8.

//go:wasmimport blockhost http_request
//go:noescape
func httpRequest(head *byte, headLen uint32, body *byte, bodyLen uint32, resp *uint32) uint32

//go:wasmimport blockhost http_response_head
//go:noescape
func httpResponseHead(handle uint32, buf *byte, bufLen uint32, nPtr *uint32) uint32

//go:wasmimport blockhost http_body_read
//go:noescape
func httpBodyRead(handle uint32, buf *byte, bufLen uint32, nPtr *uint32) uint32

//go:wasmimport blockhost http_close
func httpClose(handle uint32) uint32

//go:wasmimport blockhost http_last_error
//go:noescape
func httpLastError(buf *byte, bufLen uint32, nPtr *uint32) uint32

// HTTPRequest sends a request: head is an abi.HTTPRequest as JSON. It
// returns the response's handle and the length of its head.
func HTTPRequest(head, body []byte) (handle, headLen uint32, r abi.Result) {
	var resp [2]uint32
	r = abi.Result(httpRequest(unsafe.SliceData(head), uint32(len(head)), unsafe.SliceData(body), uint32(len(body)), &resp[0]))
	return resp[0], resp[1], r
}

// HTTPResponseHead copies a response's head into buf and returns its
// length; when buf is too small it copies nothing and returns limit.
func HTTPResponseHead(handle uint32, buf []byte) (uint32, abi.Result) {
	var n uint32
	r := httpResponseHead(handle, unsafe.SliceData(buf), uint32(len(buf)), &n)
	return n, abi.Result(r)
}

// HTTPBodyRead reads the next body bytes into buf; 0 is the end.
func HTTPBodyRead(handle uint32, buf []byte) (uint32, abi.Result) {
	var n uint32
	r := httpBodyRead(handle, unsafe.SliceData(buf), uint32(len(buf)), &n)
	return n, abi.Result(r)
}

// HTTPClose releases a response.
func HTTPClose(handle uint32) abi.Result { return abi.Result(httpClose(handle)) }

// HTTPLastError copies the detail of the last failed HTTP call into buf
// and returns its length; when buf is too small it copies nothing and
// returns limit.
func HTTPLastError(buf []byte) (uint32, abi.Result) {
	var n uint32
	r := httpLastError(unsafe.SliceData(buf), uint32(len(buf)), &n)
	return n, abi.Result(r)
}
