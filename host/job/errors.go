package job

import (
	"errors"
	"fmt"
)

// Errors of the package, compared with errors.Is.
var (
	// ErrInvalidConfig: New was given a Config it cannot run with.
	ErrInvalidConfig = errors.New("job: invalid configuration")
	// ErrInvalidRequest: a request is malformed or out of range.
	ErrInvalidRequest = errors.New("job: invalid request")
	// ErrLoad: the block a request names cannot be loaded: an unreadable
	// module or manifest, a module that does not compile, an unknown engine.
	ErrLoad = errors.New("job: cannot load block")
)

// FieldError says which field of a Request is wrong. It matches
// ErrInvalidRequest.
type FieldError struct {
	// StepID is the request's step_id when it could be read.
	StepID string
	// Field is the field's JSON name, such as "retry.max_attempts"; empty
	// when the request as a whole is wrong (not a JSON object).
	Field string
	// Problem says what is wrong with it.
	Problem string
	// Syntax is true when the text is not a request at all or a field
	// has the wrong JSON type or is unknown (ParseRequest's errors), false
	// when a well-formed field has a value out of range.
	Syntax bool
}

func (e *FieldError) Error() string {
	if e.Field == "" {
		return e.Problem
	}
	return fmt.Sprintf("%s: %s", e.Field, e.Problem)
}

// Is matches ErrInvalidRequest.
func (e *FieldError) Is(target error) bool { return target == ErrInvalidRequest }

// LoadError says which block cannot be loaded, and why. It matches ErrLoad
// and unwraps to the cause.
type LoadError struct {
	// Block is the module path, built-in name or manifest path.
	Block string
	// Err is the cause.
	Err error
}

func (e *LoadError) Error() string { return fmt.Sprintf("%s: %v", e.Block, e.Err) }

// Is matches ErrLoad.
func (e *LoadError) Is(target error) bool { return target == ErrLoad }

// Unwrap returns the cause.
func (e *LoadError) Unwrap() error { return e.Err }

// ConfigError says which setting of a Config is invalid. It matches
// ErrInvalidConfig.
type ConfigError struct {
	// Field names the setting, such as "engine" or "limits.memory".
	Field string
	// Problem says what is wrong with it.
	Problem string
}

func (e *ConfigError) Error() string {
	return fmt.Sprintf("job: invalid configuration: %s: %s", e.Field, e.Problem)
}

// Is matches ErrInvalidConfig.
func (e *ConfigError) Is(target error) bool { return target == ErrInvalidConfig }
