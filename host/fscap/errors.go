package fscap

import (
	"errors"
	"io/fs"
	"os"
	"strconv"
	"syscall"

	"github.com/blockhost/blockhost/abi"
	"github.com/blockhost/blockhost/host/capability"
)

// Error classes. Every error a Session returns is an *Error that matches
// exactly one of them with errors.Is; the class decides the ABI result, the
// step error code and whether trying again may help (see Classify).
var (
	// Permanent.
	ErrNotFound    = errors.New("fscap: not found")         // also matches fs.ErrNotExist
	ErrPermission  = errors.New("fscap: permission denied") // also matches fs.ErrPermission
	ErrExist       = errors.New("fscap: already exists")    // also matches fs.ErrExist
	ErrNoSpace     = errors.New("fscap: no space left")
	ErrQuota       = errors.New("fscap: quota exceeded")
	ErrInvalidPath = errors.New("fscap: invalid path") // also matches fs.ErrInvalid

	// Retryable.
	ErrUnavailable = errors.New("fscap: temporarily unavailable")
	ErrTimeout     = errors.New("fscap: operation timed out") // also matches os.ErrDeadlineExceeded
	ErrIO          = errors.New("fscap: input/output error")

	// ErrStepEnded is the class of an operation cut short because the step
	// ended; the step's own status (timeout or cancelled) says why.
	ErrStepEnded = errors.New("fscap: step ended")
)

// Error is a failed file operation.
type Error struct {
	// Op is the operation, such as "read" or "write".
	Op string
	// Path is the guest path as the guest gave it.
	Path string
	// Grant names the grant the path fell in, or is empty when it fell in
	// none.
	Grant string
	// Class is one of the Err* sentinels of this package.
	Class error
	// Reason tells apart refusals of one Class that a caller must treat
	// differently, such as WASI's error numbers; ReasonNone for most.
	Reason Reason
	// Detail says, for people, what exactly was wrong.
	Detail string
	// Err is the underlying error, such as a *fs.PathError wrapping a
	// syscall.Errno, or the step's context.Cause; it may be nil.
	Err error
}

// Reason refines an error's Class where the difference matters to a
// caller: WASI reports EROFS, EISDIR and ENOTDIR for them (wasi.go), which
// it must not decide by comparing message text.
type Reason uint8

// Reasons.
const (
	ReasonNone     Reason = iota
	ReasonReadOnly        // a write under a read-only grant (ErrPermission)
	ReasonIsDir           // a directory where a file is needed (ErrInvalidPath)
	ReasonNotDir          // a file where a directory is needed (ErrInvalidPath)
)

// String is the reason as an Error's Detail states it.
func (r Reason) String() string {
	switch r {
	case ReasonReadOnly:
		return "the directory is granted read-only"
	case ReasonIsDir:
		return "is a directory"
	case ReasonNotDir:
		return "not a directory"
	}
	return ""
}

// Error returns "write /data/x: quota exceeded: ...".
func (e *Error) Error() string {
	msg := e.Op + " " + quote(e.Path) + ": " + className(e.Class)
	if e.Detail != "" {
		msg += ": " + e.Detail
	}
	return msg
}

// quote keeps a path readable in a message while showing control and
// invalid bytes, which a guest may put in a path to confuse logs.
func quote(p string) string {
	for i := 0; i < len(p); i++ {
		if c := p[i]; c < 0x20 || c == 0x7f || c >= 0x80 || c == ' ' || c == '"' {
			return strconv.Quote(p)
		}
	}
	if p == "" {
		return `""`
	}
	return p
}

// Unwrap returns the underlying error.
func (e *Error) Unwrap() error { return e.Err }

// Is matches the error's class and the io/fs sentinel that corresponds to
// it.
func (e *Error) Is(target error) bool {
	if target == e.Class {
		return true
	}
	switch e.Class {
	case ErrNotFound:
		return target == fs.ErrNotExist
	case ErrPermission:
		return target == fs.ErrPermission
	case ErrExist:
		return target == fs.ErrExist
	case ErrInvalidPath:
		return target == fs.ErrInvalid
	case ErrTimeout:
		return target == os.ErrDeadlineExceeded
	}
	return false
}

func className(c error) string {
	switch c {
	case ErrNotFound:
		return "not found"
	case ErrPermission:
		return "permission denied"
	case ErrExist:
		return "already exists"
	case ErrNoSpace:
		return "no space left"
	case ErrQuota:
		return "quota exceeded"
	case ErrInvalidPath:
		return "invalid path"
	case ErrUnavailable:
		return "temporarily unavailable"
	case ErrTimeout:
		return "operation timed out"
	case ErrStepEnded:
		return "step ended"
	}
	return "input/output error"
}

// Class describes an error class: how it reaches a guest and a step.
type Class = capability.Class

// classes maps each class to its ABI result and step error. docs/abi.md
// ("Filesystem capability") and docs/capabilities.md state the same table.
var classes = map[error]Class{
	ErrNotFound:    {Result: abi.ResultNotFound, Code: abi.CodeResourceUnavailable},
	ErrPermission:  {Result: abi.ResultDenied, Code: abi.CodePermissionDenied},
	ErrExist:       {Result: abi.ResultExists, Code: abi.CodeExecutionFailed},
	ErrNoSpace:     {Result: abi.ResultLimit, Code: abi.CodeQuotaExceeded},
	ErrQuota:       {Result: abi.ResultLimit, Code: abi.CodeQuotaExceeded},
	ErrInvalidPath: {Result: abi.ResultInvalid, Code: abi.CodeInvalidInput},
	ErrUnavailable: {Result: abi.ResultUnavailable, Code: abi.CodeResourceUnavailable, Retryable: true},
	// An operation's own timeout is not the step's: the ABI keeps
	// ResultTimeout for the end of the step (docs/abi.md §5).
	ErrTimeout: {Result: abi.ResultUnavailable, Code: abi.CodeResourceUnavailable, Retryable: true},
	ErrIO:      {Result: abi.ResultIO, Code: abi.CodeResourceUnavailable, Retryable: true},
}

// Classify returns how err reaches a guest and a step. An error that is
// not from this package is classified as ErrIO. For ErrStepEnded the
// result is timeout or cancelled by the step context's cause, and the code
// the matching host code.
func Classify(err error) Class {
	var e *Error
	if !errors.As(err, &e) {
		return classes[ErrIO]
	}
	if e.Class == ErrStepEnded {
		return capability.Ended(e.Err)
	}
	if c, ok := classes[e.Class]; ok {
		return c
	}
	return classes[ErrIO]
}

// Retryable reports whether trying the operation again may succeed.
func Retryable(err error) bool { return Classify(err).Retryable }

// StepError returns err as the step error a built-in block returns for it,
// or nil for a nil err.
func StepError(err error) *abi.Error {
	if err == nil {
		return nil
	}
	return Classify(err).StepError(err.Error())
}

// classOf sorts an error from package os or the kernel into a class.
func classOf(err error) error {
	if errEscape != nil && errors.Is(err, errEscape) {
		return ErrPermission
	}
	var errno syscall.Errno
	if errors.As(err, &errno) {
		switch errno {
		case syscall.ENOENT, syscall.ENOTDIR:
			return ErrNotFound
		case syscall.EACCES, syscall.EPERM, syscall.EROFS:
			return ErrPermission
		case syscall.EEXIST, syscall.ENOTEMPTY:
			return ErrExist
		case syscall.ENOSPC, syscall.EDQUOT, syscall.EFBIG:
			return ErrNoSpace
		case syscall.EINVAL, syscall.EISDIR, syscall.ELOOP, syscall.ENAMETOOLONG, syscall.ENXIO, syscall.ESPIPE:
			return ErrInvalidPath
		case syscall.EAGAIN, syscall.EINTR, syscall.EBUSY, syscall.ETXTBSY, syscall.EMFILE, syscall.ENFILE:
			return ErrUnavailable
		}
		return ErrIO
	}
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return ErrNotFound
	case errors.Is(err, fs.ErrPermission):
		return ErrPermission
	case errors.Is(err, fs.ErrExist):
		return ErrExist
	case errors.Is(err, fs.ErrInvalid):
		return ErrInvalidPath
	}
	return ErrIO
}
