package host

import (
	"errors"
	"fmt"
	"strings"

	"github.com/blockhost/blockhost/abi"
)

// Errors returned when loading a module, compared with errors.Is.
var (
	// ErrInvalidModule: the bytes are not a valid WebAssembly module, or the
	// module breaks a rule of the ABI (no entry point, no exported memory).
	ErrInvalidModule = errors.New("host: invalid module")
	// ErrUnknownImport: the module imports something the host does not
	// provide.
	ErrUnknownImport = errors.New("host: unknown import")
	// ErrABIVersion: the module declares no ABI version or one the host
	// does not speak.
	ErrABIVersion = errors.New("host: ABI version mismatch")
	// ErrUnknownEngine: no engine is registered under the configured name.
	ErrUnknownEngine = errors.New("host: unknown engine")
	// ErrClosed: the runtime was closed.
	ErrClosed = errors.New("host: runtime closed")
)

// Sentinel causes the host records when it ends a step. Callers that
// cancel a step's context with context.WithCancelCause may pass
// ErrCancelled (or any cause of their own) — anything but a deadline is
// reported as cancelled.
var (
	ErrStepTimeout = errors.New("host: step timeout")
	ErrCancelled   = errors.New("host: step cancelled")
)

// ModuleError is a load-time failure of one module.
type ModuleError struct {
	// Module names the module, usually its file.
	Module string
	// Kind is the sentinel this error matches: ErrInvalidModule,
	// ErrUnknownImport or ErrABIVersion.
	Kind error
	// Detail says what was wrong, for people.
	Detail string
	// Err is the engine's underlying error, if any.
	Err error
}

func (e *ModuleError) Error() string {
	var b strings.Builder
	b.WriteString("module ")
	b.WriteString(e.Module)
	b.WriteString(": ")
	b.WriteString(e.Detail)
	if e.Err != nil {
		b.WriteString(": ")
		b.WriteString(e.Err.Error())
	}
	return b.String()
}

// Is matches the error's kind.
func (e *ModuleError) Is(target error) bool { return target == e.Kind }

// Unwrap returns the engine's error.
func (e *ModuleError) Unwrap() error { return e.Err }

// VersionError is a ModuleError for an ABI version mismatch.
type VersionError struct {
	Module string
	// Declared lists the versions the module declares; empty when none.
	Declared []uint32
	// Host is the version this host speaks.
	Host uint32
}

func (e *VersionError) Error() string {
	if len(e.Declared) == 0 {
		return fmt.Sprintf("module %s: declares no ABI version (export %q); this host speaks ABI v%d",
			e.Module, abi.VersionExport(e.Host), e.Host)
	}
	vs := make([]string, len(e.Declared))
	for i, v := range e.Declared {
		vs[i] = fmt.Sprintf("v%d", v)
	}
	return fmt.Sprintf("module %s: is built for ABI %s; this host speaks ABI v%d",
		e.Module, strings.Join(vs, ", "), e.Host)
}

// Is matches ErrABIVersion.
func (e *VersionError) Is(target error) bool { return target == ErrABIVersion }
