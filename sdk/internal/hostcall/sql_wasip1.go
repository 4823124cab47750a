//go:build wasip1

package hostcall

import (
	"unsafe"

	"github.com/blockhost/blockhost/abi"
)

// The SQL capability's host functions, docs/abi.md §10.

//go:wasmimport blockhost sql_query
//go:noescape
func sqlQuery(req *byte, reqLen uint32, nPtr *uint32) uint32

//go:wasmimport blockhost sql_result
//go:noescape
func sqlResult(buf *byte, bufLen uint32, nPtr *uint32) uint32

//go:wasmimport blockhost sql_exec
//go:noescape
func sqlExec(req *byte, reqLen uint32, affected *int64) uint32

//go:wasmimport blockhost sql_last_error
//go:noescape
func sqlLastError(buf *byte, bufLen uint32, nPtr *uint32) uint32

// SQLQuery runs a statement (req is an abi.SQLRequest as JSON) and returns
// the length of its result, held for SQLResult.
func SQLQuery(req []byte) (uint32, abi.Result) {
	var n uint32
	r := sqlQuery(unsafe.SliceData(req), uint32(len(req)), &n)
	return n, abi.Result(r)
}

// SQLResult copies the held result into buf and returns its length; when
// buf is too small it copies nothing and returns limit.
func SQLResult(buf []byte) (uint32, abi.Result) {
	var n uint32
	r := sqlResult(unsafe.SliceData(buf), uint32(len(buf)), &n)
	return n, abi.Result(r)
}

// SQLExec runs a statement that returns no rows and returns the rows it
// changed.
func SQLExec(req []byte) (int64, abi.Result) {
	var n int64
	r := sqlExec(unsafe.SliceData(req), uint32(len(req)), &n)
	return n, abi.Result(r)
}

// SQLLastError copies the detail of the last failed SQL call into buf.
func SQLLastError(buf []byte) (uint32, abi.Result) {
	var n uint32
	r := sqlLastError(unsafe.SliceData(buf), uint32(len(buf)), &n)
	return n, abi.Result(r)
}
