// Package callerr turns a capability host call's failure into the
// code, class and message a block's error carries, for every capability
// package of the sdk alike.
package callerr

import (
	"encoding/json"

	"github.com/blockhost/blockhost/abi"
)

// LastError fetches a capability's last error detail (an abi.Error as
// JSON) through fetch, its *_last_error host call, growing the buffer
// once if the host asks for more; nil when the host has none.
func LastError(fetch func([]byte) (uint32, abi.Result)) *abi.Error {
	buf := make([]byte, 1024)
	n, r := fetch(buf)
	if r == abi.ResultLimit && n > uint32(len(buf)) {
		buf = make([]byte, n)
		n, r = fetch(buf)
	}
	if r != abi.ResultOK || n > uint32(len(buf)) {
		return nil
	}
	var d abi.Error
	if err := json.Unmarshal(buf[:n], &d); err != nil {
		return nil
	}
	return &d
}

// Detail returns the code, class and message of a call that returned r:
// the step's end for timeout and cancelled; else the host's detail,
// fetched through lastError; else a default by the result, with
// unavailable as the given code and retryable, and other results as
// other.
func Detail(r abi.Result, lastError func([]byte) (uint32, abi.Result), unavailable, other abi.Code, fallback string) (abi.Code, abi.Class, string) {
	switch r {
	case abi.ResultTimeout:
		return abi.CodeCancelledByTimeout, abi.ClassPermanent, "the step's deadline passed"
	case abi.ResultCancelled:
		return abi.CodeCancelledByUser, abi.ClassPermanent, "the step was cancelled"
	}
	if d := LastError(lastError); d != nil {
		return d.Code, d.Class, d.Message
	}
	switch r {
	case abi.ResultDenied:
		return abi.CodePermissionDenied, abi.ClassPermanent, fallback
	case abi.ResultInvalid:
		return abi.CodeInvalidInput, abi.ClassPermanent, fallback
	case abi.ResultLimit:
		return abi.CodeQuotaExceeded, abi.ClassPermanent, fallback
	case abi.ResultUnavailable:
		return unavailable, abi.ClassRetryable, fallback
	}
	return other, abi.ClassPermanent, fallback
}
