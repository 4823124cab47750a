package capability

import (
	"context"
	"errors"

	"github.com/blockhost/blockhost/abi"
)

// Class is how one kind of a capability's failure reaches a guest and a
// step: the result its host call returns and the step error it becomes.
// Each capability keeps its own table of kinds to classes (fscap, sqlcap);
// what they share is here.
type Class struct {
	// Result is what a host call returns for it.
	Result abi.Result
	// Code and Retryable are the step error it becomes.
	Code      abi.Code
	Retryable bool
}

// Ended is the Class of an operation cut by the end of its step, whose
// context ended with cause: timeout and cancelled_by_timeout for a
// deadline (the host's own step-timeout cause or a context deadline),
// cancelled and cancelled_by_user otherwise. Neither is retryable: the
// step's own status says what happened.
func Ended(cause error) Class {
	if isDeadline(cause) {
		return Class{abi.ResultTimeout, abi.CodeCancelledByTimeout, false}
	}
	return Class{abi.ResultCancelled, abi.CodeCancelledByUser, false}
}

// StepError returns the step error of a failure of class c, with msg as
// its message.
func (c Class) StepError(msg string) *abi.Error {
	class := abi.ClassPermanent
	if c.Retryable {
		class = abi.ClassRetryable
	}
	return abi.NewError(c.Code, class, msg)
}

// isDeadline reports whether a step's cause is a deadline, as the host
// decides it: its own step-timeout cause (which has Timeout() true) or a
// context deadline.
func isDeadline(cause error) bool {
	if errors.Is(cause, context.DeadlineExceeded) {
		return true
	}
	var t interface{ Timeout() bool }
	return errors.As(cause, &t) && t.Timeout()
}
