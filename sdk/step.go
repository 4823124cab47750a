package sdk

import (
	"time"

	"github.com/blockhost/blockhost/abi"
	"github.com/blockhost/blockhost/sdk/internal/hostcall"
)

// Deadline returns when the current step's deadline passes, as the host
// reports it now, and false when the step has none. Once the step is over
// it returns the current time and true. Outside a step (a native build
// without sdktest) it returns false.
//
// The handler's context carries the same deadline; Deadline is for code
// that has no context at hand.
func Deadline() (time.Time, bool) {
	ns, r := hostcall.Deadline()
	switch err := callErr(abi.FuncDeadline, r); {
	case err == nil && ns >= 0:
		return time.Now().Add(time.Duration(ns)), true
	case err != nil && stepOver(err):
		return time.Now(), true
	}
	return time.Time{}, false
}

// Check returns nil while the current step runs and, once it is over, an
// error matching ErrTimeout or ErrCancelled. A block needs it only to stop
// early and cleanly — to flush partial work, say: the host interrupts a
// step that runs past its deadline whether or not the block checks.
func Check() error {
	return callErr(abi.FuncCheck, hostcall.Check())
}
