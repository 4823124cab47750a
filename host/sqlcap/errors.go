package sqlcap

import (
	"errors"

	"github.com/blockhost/blockhost/abi"
	"github.com/blockhost/blockhost/host/capability"
)

// Kinds of failure. Every error a DB returns for a statement is an *Error
// that matches exactly one of them with errors.Is. The table in
// docs/capabilities.md ("SQL") gives each kind's step error code, class and
// host call result, and which database errors fall into it.
var (
	// ErrDenied: no grant names the database, the database refused the
	// statement for lack of permission (a write under a read-only grant, a
	// privilege the role lacks, an operation sqlcap never allows such as
	// ATTACH), or authentication failed. permission_denied, permanent.
	ErrDenied = errors.New("sqlcap: permission denied")
	// ErrInvalid: the statement is not one valid statement — a syntax
	// error, an unknown table or column, more than one statement, the wrong
	// number or kind of parameters, a duplicate column name in a result.
	// invalid_input, permanent.
	ErrInvalid = errors.New("sqlcap: invalid statement")
	// ErrConstraint: a constraint refused the change (unique, foreign key,
	// not null, check). execution_failed, permanent.
	ErrConstraint = errors.New("sqlcap: constraint violation")
	// ErrFailed: the database failed the statement for another reason of
	// its own (a division by zero, a corrupt file). execution_failed,
	// permanent.
	ErrFailed = errors.New("sqlcap: statement failed")
	// ErrQuota: the result has more rows than max_rows or more bytes than
	// max_bytes, or the statement or its parameters are over their caps;
	// reading stopped there. quota_exceeded, permanent.
	ErrQuota = errors.New("sqlcap: quota exceeded")
	// ErrUnavailable: the database is busy for now — too many connections,
	// a lock held elsewhere, a serialization failure, a deadlock, the
	// server starting or out of resources. resource_unavailable,
	// retryable.
	ErrUnavailable = errors.New("sqlcap: database unavailable")
	// ErrNetwork: the connection failed — refused, reset, closed by an
	// administrator's shutdown. network_error, retryable.
	ErrNetwork = errors.New("sqlcap: network error")
	// ErrTimeout: the grant's per-statement timeout passed, while waiting
	// for a connection or while the statement ran; the statement was
	// stopped on the server. connection_timeout, retryable.
	ErrTimeout = errors.New("sqlcap: statement timed out")
	// ErrStepEnded: the step's context ended (deadline or cancellation)
	// while the statement ran; the statement was stopped on the server.
	// The step's own status says which (cancelled_by_timeout or
	// cancelled_by_user).
	ErrStepEnded = errors.New("sqlcap: step ended")
	// ErrClosed: the database's pool was closed. internal_error.
	ErrClosed = errors.New("sqlcap: database closed")
)

// Class describes an error kind: how it reaches a guest and a step.
type Class = capability.Class

// classes maps each kind to its ABI result and step error. docs/abi.md and
// docs/capabilities.md state the same table.
var classes = map[error]Class{
	ErrDenied:      {Result: abi.ResultDenied, Code: abi.CodePermissionDenied},
	ErrInvalid:     {Result: abi.ResultInvalid, Code: abi.CodeInvalidInput},
	ErrConstraint:  {Result: abi.ResultIO, Code: abi.CodeExecutionFailed},
	ErrFailed:      {Result: abi.ResultIO, Code: abi.CodeExecutionFailed},
	ErrQuota:       {Result: abi.ResultLimit, Code: abi.CodeQuotaExceeded},
	ErrUnavailable: {Result: abi.ResultUnavailable, Code: abi.CodeResourceUnavailable, Retryable: true},
	ErrNetwork:     {Result: abi.ResultUnavailable, Code: abi.CodeNetworkError, Retryable: true},
	// A statement's own timeout is not the step's: the ABI keeps
	// ResultTimeout for the end of the step (docs/abi.md §5).
	ErrTimeout: {Result: abi.ResultUnavailable, Code: abi.CodeConnectionTimeout, Retryable: true},
	ErrClosed:  {Result: abi.ResultUnavailable, Code: abi.CodeInternalError},
}

// Error is a statement that failed.
type Error struct {
	// Kind is the sentinel the error matches: ErrDenied, ErrInvalid, ….
	Kind error
	// Op is "query" or "exec".
	Op string
	// Database is the grant's name.
	Database string
	// SQLState is the database's own error code where it gave one: the
	// PostgreSQL SQLSTATE ("23505") or the SQLite extended result code
	// ("SQLITE_CONSTRAINT_UNIQUE").
	SQLState string
	// Reason says what happened, for people. It never holds a DSN.
	Reason string
	// Err is the underlying error, if any: the driver's, or the step
	// context's cause for ErrStepEnded.
	Err error
}

// Error returns, for example, `query orders: invalid statement: syntax
// error at or near "SELEC" (42601)`.
func (e *Error) Error() string {
	s := e.Op + " " + e.Database + ": " + kindName(e.Kind)
	if e.Reason != "" {
		s += ": " + e.Reason
	}
	if e.SQLState != "" {
		s += " (" + e.SQLState + ")"
	}
	return s
}

// Is reports whether target is e's kind.
func (e *Error) Is(target error) bool { return target == e.Kind }

// Unwrap returns the underlying error.
func (e *Error) Unwrap() error { return e.Err }

func kindName(k error) string {
	switch k {
	case ErrDenied:
		return "permission denied"
	case ErrInvalid:
		return "invalid statement"
	case ErrConstraint:
		return "constraint violation"
	case ErrFailed:
		return "statement failed"
	case ErrQuota:
		return "quota exceeded"
	case ErrUnavailable:
		return "database unavailable"
	case ErrNetwork:
		return "network error"
	case ErrTimeout:
		return "statement timed out"
	case ErrStepEnded:
		return "step ended"
	case ErrClosed:
		return "database closed"
	}
	return "error"
}

// GrantError is a grant or --allow-sql value that is not valid. Its
// message never quotes a DSN.
type GrantError struct {
	// Grant is the database name, if known.
	Grant string
	// Reason says what is wrong.
	Reason string
	// Err is the underlying error, if any.
	Err error
}

// Error returns `sqlcap: database "orders": REASON`.
func (e *GrantError) Error() string {
	if e.Grant == "" {
		return "sqlcap: " + e.Reason
	}
	return "sqlcap: database " + quoteName(e.Grant) + ": " + e.Reason
}

// Unwrap returns the underlying error.
func (e *GrantError) Unwrap() error { return e.Err }

func quoteName(s string) string {
	if len(s) > 80 {
		s = s[:80] + "…"
	}
	return `"` + s + `"`
}

// Classify returns how err reaches a guest and a step. An error that is
// not from this package is classified as ErrFailed. For ErrStepEnded the
// result is timeout or cancelled by the step context's cause.
func Classify(err error) Class {
	var e *Error
	if !errors.As(err, &e) {
		return classes[ErrFailed]
	}
	if e.Kind == ErrStepEnded {
		return capability.Ended(e.Err)
	}
	if c, ok := classes[e.Kind]; ok {
		return c
	}
	return classes[ErrFailed]
}

// Retryable reports whether running the statement again may succeed.
func Retryable(err error) bool { return Classify(err).Retryable }

// StepError returns err as the step error a built-in block returns for it,
// or nil for a nil err.
func StepError(err error) *abi.Error {
	if err == nil {
		return nil
	}
	return Classify(err).StepError(err.Error())
}
