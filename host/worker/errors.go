package worker

import (
	"errors"
	"fmt"
)

// Errors of the worker, compared with errors.Is.
var (
	// ErrInvalidAssignment matches every *ValidationError.
	ErrInvalidAssignment = errors.New("worker: invalid assignment")
	// ErrUnsupportedJobType: the assignment's job.type is no block the
	// worker's operator configured. It matches ErrInvalidAssignment too.
	ErrUnsupportedJobType = errors.New("worker: unsupported job type")
	// ErrInvalidConfig: New or StartServer was given a configuration it
	// cannot run with.
	ErrInvalidConfig = errors.New("worker: invalid configuration")
	// ErrClosed: the worker was already started or shut down.
	ErrClosed = errors.New("worker: closed")
	// ErrCancelled is the cause recorded on a step cancelled over the wire
	// (SubjectCancel) or by Worker.CancelRunning.
	ErrCancelled = errors.New("worker: step cancelled")
	// ErrHandedBack is the cause recorded on a running step that a
	// shutdown cut off at its deadline: its assignment is handed back to
	// the stream for another worker, and it gets no result here.
	ErrHandedBack = errors.New("worker: step handed back at shutdown")
)

// ValidationError says which rule of the wire contract an assignment
// broke. It matches ErrInvalidAssignment, and ErrUnsupportedJobType when
// Reason is ReasonUnsupportedJobType.
type ValidationError struct {
	// Reason is one of the Reason constants, such as
	// ReasonUnsupportedVersion.
	Reason string
	// Field names the offending field, such as "request_id"; empty when
	// the message as a whole is wrong.
	Field string
	// Message says what is wrong, for people.
	Message string
}

func (e *ValidationError) Error() string {
	return fmt.Sprintf("worker: invalid assignment: %s: %s", e.Reason, e.Message)
}

// Is matches ErrInvalidAssignment, and ErrUnsupportedJobType for an
// unsupported job type.
func (e *ValidationError) Is(target error) bool {
	return target == ErrInvalidAssignment || (target == ErrUnsupportedJobType && e.Reason == ReasonUnsupportedJobType)
}

// ConfigError says which setting of a Config or ServerConfig is invalid.
// It matches ErrInvalidConfig.
type ConfigError struct {
	Field, Problem string
}

func (e *ConfigError) Error() string {
	return fmt.Sprintf("worker: invalid configuration: %s: %s", e.Field, e.Problem)
}

// Is matches ErrInvalidConfig.
func (e *ConfigError) Is(target error) bool { return target == ErrInvalidConfig }
