package abi

import (
	"encoding/json"
	"fmt"
	"strconv"
)

// Code identifies why a step failed. The numbers and names are those of the
// worker blockhost replaces, so results stay comparable across both.
type Code uint32

// Step error codes.
const (
	CodeInvalidInput         Code = 1001
	CodeMissingRequiredField Code = 1002
	CodeInvalidFormat        Code = 1003
	CodeExecutionFailed      Code = 2001
	CodeResourceUnavailable  Code = 2002
	CodePermissionDenied     Code = 2003
	CodeQuotaExceeded        Code = 2004
	CodeNetworkError         Code = 3001
	CodeConnectionTimeout    Code = 3002
	CodeHTTPError            Code = 3003
	CodeInternalError        Code = 4001
	CodeSystemOverload       Code = 4002
	CodeCancelledByUser      Code = 5001
	CodeCancelledByTimeout   Code = 5002
)

var codeNames = map[Code]string{
	CodeInvalidInput:         "invalid_input",
	CodeMissingRequiredField: "missing_required_field",
	CodeInvalidFormat:        "invalid_format",
	CodeExecutionFailed:      "execution_failed",
	CodeResourceUnavailable:  "resource_unavailable",
	CodePermissionDenied:     "permission_denied",
	CodeQuotaExceeded:        "quota_exceeded",
	CodeNetworkError:         "network_error",
	CodeConnectionTimeout:    "connection_timeout",
	CodeHTTPError:            "http_error",
	CodeInternalError:        "internal_error",
	CodeSystemOverload:       "system_overload",
	CodeCancelledByUser:      "cancelled_by_user",
	CodeCancelledByTimeout:   "cancelled_by_timeout",
}

// Valid reports whether c is one of the defined codes.
func (c Code) Valid() bool {
	_, ok := codeNames[c]
	return ok
}

// Name returns the code's name, such as "invalid_input", or "" for an
// unknown code.
func (c Code) Name() string { return codeNames[c] }

// String returns the name and number, such as "invalid_input(1001)".
func (c Code) String() string {
	if n, ok := codeNames[c]; ok {
		return n + "(" + strconv.FormatUint(uint64(c), 10) + ")"
	}
	return "code(" + strconv.FormatUint(uint64(c), 10) + ")"
}

// ParseCode returns the code named s (such as "quota_exceeded") or written
// as its number (such as "2004").
func ParseCode(s string) (Code, error) {
	for c, n := range codeNames {
		if n == s {
			return c, nil
		}
	}
	if n, err := strconv.ParseUint(s, 10, 32); err == nil && Code(n).Valid() {
		return Code(n), nil
	}
	return 0, fmt.Errorf("abi: unknown error code %q", s)
}

// Class says whether trying a failed step again may succeed.
type Class uint32

// Error classes. The zero value is ClassPermanent: an error is retried only
// when something says it may be.
const (
	ClassPermanent Class = 0
	ClassRetryable Class = 1
)

// String returns "permanent" or "retryable".
func (c Class) String() string {
	switch c {
	case ClassPermanent:
		return "permanent"
	case ClassRetryable:
		return "retryable"
	}
	return "class(" + strconv.FormatUint(uint64(c), 10) + ")"
}

// Valid reports whether c is a defined class.
func (c Class) Valid() bool { return c == ClassPermanent || c == ClassRetryable }

// MarshalText encodes the class by name.
func (c Class) MarshalText() ([]byte, error) {
	if !c.Valid() {
		return nil, fmt.Errorf("abi: invalid class %d", uint32(c))
	}
	return []byte(c.String()), nil
}

// UnmarshalText decodes a class name.
func (c *Class) UnmarshalText(b []byte) error {
	switch string(b) {
	case "permanent":
		*c = ClassPermanent
	case "retryable":
		*c = ClassRetryable
	default:
		return fmt.Errorf("abi: unknown class %q", b)
	}
	return nil
}

// Status is how a step ended. Every step ends in exactly one.
type Status string

// The four statuses.
const (
	StatusSuccess   Status = "success"
	StatusError     Status = "error"
	StatusTimeout   Status = "timeout"
	StatusCancelled Status = "cancelled"
)

// Valid reports whether s is one of the four statuses.
func (s Status) Valid() bool {
	switch s {
	case StatusSuccess, StatusError, StatusTimeout, StatusCancelled:
		return true
	}
	return false
}

// MarshalJSON writes the code as its number.
func (c Code) MarshalJSON() ([]byte, error) {
	return strconv.AppendUint(nil, uint64(c), 10), nil
}

// UnmarshalJSON reads a code written as a number or a name.
func (c *Code) UnmarshalJSON(b []byte) error {
	var n uint32
	if err := json.Unmarshal(b, &n); err == nil {
		*c = Code(n)
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("abi: error code must be a number or a name, got %s", b)
	}
	v, err := ParseCode(s)
	if err != nil {
		return err
	}
	*c = v
	return nil
}
