package abi

import "time"

// RetryAfter returns the wait Error.RetryAfterMS asks for, and whether it
// asks for one. A negative value counts as zero.
func (e *Error) RetryAfter() (time.Duration, bool) {
	if e == nil || e.RetryAfterMS == nil {
		return 0, false
	}
	return time.Duration(max(*e.RetryAfterMS, 0)) * time.Millisecond, true
}

// SetRetryAfter records d, rounded up to whole milliseconds, as the wait
// the caller should observe before trying again. It returns e.
func (e *Error) SetRetryAfter(d time.Duration) *Error {
	ms := int64((max(d, 0) + time.Millisecond - 1) / time.Millisecond)
	e.RetryAfterMS = &ms
	return e
}
