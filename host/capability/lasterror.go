package capability

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/blockhost/blockhost/abi"
	"github.com/blockhost/blockhost/host/engine"
)

// LastError is the detail of a capability's last failed call in one
// step, which its *_last_error function returns (docs/abi.md §8.5, §9.4).
// The zero value holds none.
type LastError struct {
	err *abi.Error
}

// Set records e as the last failure.
func (l *LastError) Set(e *abi.Error) { l.err = e }

// Get returns the last failure, or nil.
func (l *LastError) Get() *abi.Error { return l.err }

// Fail records a permanent failure with the code and message, and
// returns r, for a call that fails with r.
func (l *LastError) Fail(r abi.Result, code abi.Code, format string, args ...any) abi.Result {
	l.err = abi.NewError(code, abi.ClassPermanent, fmt.Sprintf(format, args...))
	return r
}

// Invalid records an invalid_input detail and returns ResultInvalid, for
// an argument that is out of bounds or malformed.
func (l *LastError) Invalid(msg string) abi.Result {
	l.err = abi.NewError(abi.CodeInvalidInput, abi.ClassPermanent, msg)
	return abi.ResultInvalid
}

// LastErrorFunc is the *_last_error(buf_ptr, buf_len, n_ptr) -> result
// host function of a capability, the same for every capability: with no
// failed call in the step it returns not_found and touches no memory,
// whatever the buffer (the documented behaviour, docs/abi.md §8.1);
// otherwise it writes the detail as JSON as CopyOut does. Fetching the
// detail never replaces it, even when the fetch itself fails.
func LastErrorFunc[S State](name string, last func(S) *LastError) Func {
	return Fn(name, func(s S, _ context.Context, mem engine.Memory, args []uint64) abi.Result {
		e := last(s).Get()
		if e == nil {
			return abi.ResultNotFound
		}
		out, err := json.Marshal(e)
		if err != nil {
			return abi.ResultIO
		}
		r, _ := CopyOut(mem, out, uint32(args[0]), uint32(args[1]), uint32(args[2]))
		return r
	})
}

// CopyOut writes data at buf when it fits in bufLen bytes, and its length
// (u32) at nPtr in any case: ResultOK, or ResultLimit with nothing copied
// when the buffer is too small, so the guest can retry with the length.
// A pointer out of bounds, or no memory, is ResultInvalid with what was
// wrong, for the caller's detail.
func CopyOut(mem engine.Memory, data []byte, buf, bufLen, nPtr uint32) (abi.Result, string) {
	if mem == nil {
		return abi.ResultInvalid, "the block has no memory"
	}
	if _, ok := mem.Read(nPtr, 4); !ok {
		return abi.ResultInvalid, "n_ptr is out of bounds"
	}
	if uint64(bufLen) < uint64(len(data)) {
		mem.WriteUint32Le(nPtr, uint32(len(data)))
		return abi.ResultLimit, ""
	}
	if !mem.Write(buf, data) {
		return abi.ResultInvalid, "the buffer is out of bounds"
	}
	mem.WriteUint32Le(nPtr, uint32(len(data)))
	return abi.ResultOK, ""
}
