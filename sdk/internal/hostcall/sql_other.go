//go:build !wasip1

package hostcall

import "github.com/blockhost/blockhost/abi"

// SQLHost is the SQL part of a native build's host, one method per host
// function of docs/abi.md §10. It is optional: a Host that does not
// implement it has no SQL grants, and statements are denied.
type SQLHost interface {
	SQLQuery(req []byte) (uint32, abi.Result)
	SQLResult(buf []byte) (uint32, abi.Result)
	SQLExec(req []byte) (int64, abi.Result)
	SQLLastError(buf []byte) (uint32, abi.Result)
}

// sqlHost returns the installed host's SQL part, or nil with the result
// every call gets without one: unavailable outside a step, denied for a
// host without SQL.
func sqlHost() (SQLHost, abi.Result) {
	h := host()
	if _, none := h.(noHost); none {
		return nil, abi.ResultUnavailable
	}
	if sh, ok := h.(SQLHost); ok {
		return sh, abi.ResultOK
	}
	return nil, abi.ResultDenied
}

// SQLQuery runs a statement (req is an abi.SQLRequest as JSON) and returns
// the length of its result, held for SQLResult.
func SQLQuery(req []byte) (uint32, abi.Result) {
	h, r := sqlHost()
	if h == nil {
		return 0, r
	}
	return h.SQLQuery(req)
}

// SQLResult copies the held result into buf and returns its length; when
// buf is too small it copies nothing and returns limit.
func SQLResult(buf []byte) (uint32, abi.Result) {
	h, _ := sqlHost()
	if h == nil {
		return 0, abi.ResultNotFound
	}
	return h.SQLResult(buf)
}

// SQLExec runs a statement that returns no rows and returns the rows it
// changed.
func SQLExec(req []byte) (int64, abi.Result) {
	h, r := sqlHost()
	if h == nil {
		return 0, r
	}
	return h.SQLExec(req)
}

// SQLLastError copies the detail of the last failed SQL call into buf.
func SQLLastError(buf []byte) (uint32, abi.Result) {
	h, _ := sqlHost()
	if h == nil {
		return 0, abi.ResultNotFound
	}
	return h.SQLLastError(buf)
}
