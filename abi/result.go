package abi

import "strconv"

// Result is what a host function returns to the guest: a small closed set.
// A guest must treat a value it does not know as ResultIO.
type Result uint32

// Host call results.
const (
	ResultOK          Result = 0 // the call did what was asked
	ResultInvalid     Result = 1 // bad arguments: out-of-bounds pointer, bad level, unknown code
	ResultDenied      Result = 2 // no grant allows it
	ResultNotFound    Result = 3 // the named thing does not exist
	ResultExists      Result = 4 // the named thing already exists
	ResultLimit       Result = 5 // a size, count or rate cap was reached
	ResultTimeout     Result = 6 // the step's deadline has passed
	ResultCancelled   Result = 7 // the step was cancelled
	ResultUnavailable Result = 8 // a dependency is unavailable for now; may succeed later
	ResultIO          Result = 9 // an I/O failure
)

var resultNames = [...]string{"ok", "invalid", "denied", "not_found", "exists", "limit", "timeout", "cancelled", "unavailable", "io"}

// String returns the result's ABI name, such as "denied".
func (r Result) String() string {
	if int(r) < len(resultNames) {
		return resultNames[r]
	}
	return "result(" + strconv.FormatUint(uint64(r), 10) + ")"
}
