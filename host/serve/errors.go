package serve

import (
	"errors"
	"fmt"
)

// Errors of the serve package, compared with errors.Is.
var (
	// ErrInvalidConfig: the server's configuration — the file or a
	// setting — cannot be served. Every *ConfigError matches it.
	ErrInvalidConfig = errors.New("serve: invalid configuration")

	// ErrStore: the durable store could not be opened or used. Every
	// *StoreError matches it.
	ErrStore = errors.New("serve: store")

	// ErrClosed: the server is shutting down or shut down.
	ErrClosed = errors.New("serve: closed")
)

// ConfigError names what is wrong in the configuration and where.
type ConfigError struct {
	// Where is the file and line ("serve.hcl:12,3"), or the setting
	// ("--listen"), or empty.
	Where string
	// Problem says what is wrong.
	Problem string
	// Err is the cause, when another package found the problem (a
	// *job.PinError for a module that is not the pinned one); may be nil.
	Err error
}

// Unwrap returns the cause, if any.
func (e *ConfigError) Unwrap() error { return e.Err }

func (e *ConfigError) Error() string {
	if e.Where == "" {
		return "serve: invalid configuration: " + e.Problem
	}
	return fmt.Sprintf("serve: invalid configuration: %s: %s", e.Where, e.Problem)
}

// Is matches ErrInvalidConfig.
func (e *ConfigError) Is(target error) bool { return target == ErrInvalidConfig }

// StoreError is a failure of the durable store at Path.
type StoreError struct {
	Path string
	Err  error
}

func (e *StoreError) Error() string { return fmt.Sprintf("serve: store %s: %v", e.Path, e.Err) }

// Is matches ErrStore.
func (e *StoreError) Is(target error) bool { return target == ErrStore }

// Unwrap returns the underlying error.
func (e *StoreError) Unwrap() error { return e.Err }
