package job

import (
	"errors"
	"fmt"
	"strings"
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
	// ErrPinMismatch: the module's digest is not the one a manifest's
	// sha256, a request's sha256 or a configuration pins (a *PinError).
	ErrPinMismatch = errors.New("job: module does not match its pinned digest")
	// ErrGrantsWidened: the operator's grants would add to a manifest's
	// without Settings.ExtendGrants (a *WidenError).
	ErrGrantsWidened = errors.New("job: grants would widen the manifest")
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
	// Module is the digest ("sha256:HEX") of the module the request names,
	// when it was loaded before the field was found wrong, so that the
	// error result still says which module it was about.
	Module string
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
	// Module is the digest ("sha256:HEX") of the module file, when it was
	// read before loading failed.
	Module string
}

func (e *LoadError) Error() string {
	// A manifest's diagnostics name their file already.
	if msg := e.Err.Error(); strings.HasPrefix(msg, e.Block+":") {
		return msg
	}
	return fmt.Sprintf("%s: %v", e.Block, e.Err)
}

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

// PinError says that a module is not the one pinned. It matches
// ErrPinMismatch. Both digests are "sha256:" and 64 lower-case hex digits.
type PinError struct {
	// Path is the module file.
	Path string
	// By says who pinned it: "manifest m.hcl", "request".
	By string
	// Pinned is the digest pinned; Actual the digest of the bytes read.
	Pinned, Actual string
}

func (e *PinError) Error() string {
	if e.Actual == "" {
		return fmt.Sprintf("%s: the %s pins %s, but this is a built-in block, which has no digest", e.Path, e.By, e.Pinned)
	}
	return fmt.Sprintf("%s: the module is %s, but the %s pins %s: refusing to load another module than the one pinned",
		e.Path, e.Actual, e.By, e.Pinned)
}

// Is matches ErrPinMismatch.
func (e *PinError) Is(target error) bool { return target == ErrPinMismatch }

// WidenError says that the operator's grants (Settings: the command-line
// flags) would add to what a manifest grants, without ExtendGrants. It
// matches ErrGrantsWidened.
type WidenError struct {
	// Manifest is the manifest's path.
	Manifest string
	// Grants describes each grant that would be added, as
	// Extensions does.
	Grants []string
}

func (e *WidenError) Error() string {
	return fmt.Sprintf("%s: refusing to widen the reviewed manifest's grants with the operator's %s "+
		"(allow it explicitly with --extend-grants, job.Settings.ExtendGrants)", e.Manifest, strings.Join(e.Grants, "; "))
}

// Is matches ErrGrantsWidened.
func (e *WidenError) Is(target error) bool { return target == ErrGrantsWidened }
