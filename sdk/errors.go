package sdk

import (
	"errors"
	"fmt"

	"github.com/blockhost/blockhost/abi"
)

// Errors a host call can fail with, one for each result code of
// docs/abi.md §5 other than ok. Every failed call returns a *CallError that
// matches exactly one of them with errors.Is.
var (
	ErrInvalid     = errors.New("sdk: invalid")     // bad arguments: out-of-bounds pointer, unknown level, code or class
	ErrDenied      = errors.New("sdk: denied")      // no grant allows it
	ErrNotFound    = errors.New("sdk: not found")   // the named thing does not exist
	ErrExists      = errors.New("sdk: exists")      // the named thing already exists
	ErrLimit       = errors.New("sdk: limit")       // a size, count or rate cap was reached
	ErrTimeout     = errors.New("sdk: timeout")     // the step's deadline has passed
	ErrCancelled   = errors.New("sdk: cancelled")   // the step was cancelled
	ErrUnavailable = errors.New("sdk: unavailable") // a dependency is unavailable now and may be later
	ErrIO          = errors.New("sdk: io")          // an input/output failure, or a result the sdk does not know
)

// sentinels is indexed by abi.Result.
var sentinels = [...]error{
	abi.ResultInvalid:     ErrInvalid,
	abi.ResultDenied:      ErrDenied,
	abi.ResultNotFound:    ErrNotFound,
	abi.ResultExists:      ErrExists,
	abi.ResultLimit:       ErrLimit,
	abi.ResultTimeout:     ErrTimeout,
	abi.ResultCancelled:   ErrCancelled,
	abi.ResultUnavailable: ErrUnavailable,
	abi.ResultIO:          ErrIO,
}

// CallError is a host call that did not return ok.
type CallError struct {
	// Func is the host function, such as "output_write".
	Func string
	// Result is what the host returned, possibly a value this sdk does not
	// know; such a value is treated as abi.ResultIO.
	Result abi.Result
}

// callErr returns nil for ResultOK and a *CallError otherwise.
func callErr(fn string, r abi.Result) error {
	if r == abi.ResultOK {
		return nil
	}
	return &CallError{Func: fn, Result: r}
}

// Error returns, for example, "sdk: output_write: limit".
func (e *CallError) Error() string {
	if int(e.Result) < len(sentinels) && e.Result != abi.ResultOK {
		return "sdk: " + e.Func + ": " + e.Result.String()
	}
	return fmt.Sprintf("sdk: %s: io (unknown result %d)", e.Func, uint32(e.Result))
}

// Unwrap returns the sentinel error for the result.
func (e *CallError) Unwrap() error {
	if int(e.Result) < len(sentinels) && e.Result != abi.ResultOK {
		return sentinels[e.Result]
	}
	return ErrIO
}

// Is reports whether target is the sentinel for the result, so that
// errors.Is stops here rather than walking on.
func (e *CallError) Is(target error) bool { return target == e.Unwrap() }

// stepOver reports whether err says the step has ended: every later host
// call would fail the same way, so there is nothing left to report.
func stepOver(err error) bool {
	return errors.Is(err, ErrTimeout) || errors.Is(err, ErrCancelled)
}

// Error is a block's failure as the host records it: a step error code, a
// class that says whether trying again may help, and a message for people.
// Return one (or an error wrapping one) from a handler to choose the code
// and class the step ends with.
type Error struct {
	// Code is one of the codes of docs/abi.md §6 below 5000.
	Code abi.Code
	// Class is abi.ClassPermanent (the zero value) or abi.ClassRetryable.
	Class abi.Class
	// Message says what went wrong; the host keeps its first 4096 bytes.
	Message string

	err error // the wrapped cause, if any
}

// NewError returns an *Error with the given code, class and message.
func NewError(code abi.Code, class abi.Class, msg string) *Error {
	return &Error{Code: code, Class: class, Message: msg}
}

// Errorf is NewError with a message formatted as fmt.Errorf formats it; an
// operand of a %w verb is wrapped, so errors.Is and errors.As see it.
func Errorf(code abi.Code, class abi.Class, format string, args ...any) *Error {
	fe := fmt.Errorf(format, args...)
	e := &Error{Code: code, Class: class, Message: fe.Error()}
	switch fe.(type) {
	case interface{ Unwrap() error }, interface{ Unwrap() []error }:
		e.err = fe
	}
	return e
}

// Retryable returns err marked as retryable: an *Error whose code is that
// of the first *Error in err's chain, or execution_failed if there is none,
// and which wraps err. It returns nil when err is nil.
func Retryable(err error) error { return withClass(err, abi.ClassRetryable) }

// Permanent is Retryable's opposite: err marked as permanent.
func Permanent(err error) error { return withClass(err, abi.ClassPermanent) }

func withClass(err error, class abi.Class) error {
	if err == nil {
		return nil
	}
	code := abi.CodeExecutionFailed
	if se, ok := errors.AsType[*Error](err); ok {
		code = se.Code
	}
	return &Error{Code: code, Class: class, Message: err.Error(), err: err}
}

// Error returns the message, or the code (such as "invalid_input(1001)")
// when the message is empty. The code and class are otherwise left out:
// they travel to the host as numbers.
func (e *Error) Error() string {
	if e.Message == "" {
		return e.Code.String()
	}
	return e.Message
}

// Unwrap returns the error e wraps, if any.
func (e *Error) Unwrap() error { return e.err }
