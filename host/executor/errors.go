package executor

import (
	"context"
	"errors"
	"fmt"
)

// Errors of the executor, compared with errors.Is.
var (
	// ErrInvalidConfig: New was given a configuration it cannot run with.
	ErrInvalidConfig = errors.New("executor: invalid configuration")

	// ErrClosed is the cause recorded on the steps that Close cancels.
	ErrClosed = errors.New("executor: closed")

	// ErrCancelled is the cause recorded when a step is cancelled through
	// its Ticket.
	ErrCancelled = errors.New("executor: step cancelled")

	// ErrTotalDeadline is the cause recorded when a step's total deadline
	// passes. It matches context.DeadlineExceeded, so every part of the
	// host reports it as a timeout, never as a cancellation.
	ErrTotalDeadline error = deadlineError{}
)

type deadlineError struct{}

func (deadlineError) Error() string { return "executor: total deadline passed" }

// Is makes ErrTotalDeadline match context.DeadlineExceeded.
func (deadlineError) Is(target error) bool { return target == context.DeadlineExceeded }

// ConfigError says which part of a Config is invalid. It matches
// ErrInvalidConfig.
type ConfigError struct {
	// Field names the setting, such as "pool \"default\": Concurrency".
	Field string
	// Problem says what is wrong with it.
	Problem string
}

func (e *ConfigError) Error() string {
	return fmt.Sprintf("executor: invalid configuration: %s: %s", e.Field, e.Problem)
}

// Is matches ErrInvalidConfig.
func (e *ConfigError) Is(target error) bool { return target == ErrInvalidConfig }
