package manifest

import (
	"errors"
	"fmt"
	"strings"
)

// ErrInvalid is matched, through errors.Is, by every error that Parse and
// ParseFile return for a manifest that was read but is not valid: a syntax
// error or a semantic one. An error reading the file is not ErrInvalid; it
// wraps the error from the os package instead.
var ErrInvalid = errors.New("manifest: invalid")

// Diagnostic is one problem found in a manifest, located in its source.
type Diagnostic struct {
	// File is the manifest's file name as given to Parse or ParseFile.
	File string
	// Line and Column are 1-based and point at the offending attribute
	// value, label, key or block. They are zero only when the HCL parser
	// reported a problem without a position.
	Line, Column int
	// Summary is a short title, such as "Invalid memory limit".
	Summary string
	// Detail says what was wrong and, where it helps, what is expected.
	Detail string
}

// String formats d as "file:line:col: summary: detail", the form compilers
// use, so that editors can jump to the position.
func (d Diagnostic) String() string {
	var b strings.Builder
	b.WriteString(d.File)
	if d.Line > 0 {
		fmt.Fprintf(&b, ":%d:%d", d.Line, d.Column)
	}
	b.WriteString(": ")
	b.WriteString(d.Summary)
	if d.Detail != "" {
		b.WriteString(": ")
		b.WriteString(d.Detail)
	}
	return b.String()
}

// Error is an invalid manifest: every problem found, in source order. It
// matches ErrInvalid.
type Error struct {
	Diagnostics []Diagnostic
}

// Error prints one line per diagnostic.
func (e *Error) Error() string {
	lines := make([]string, len(e.Diagnostics))
	for i, d := range e.Diagnostics {
		lines[i] = d.String()
	}
	return strings.Join(lines, "\n")
}

// Is reports whether target is ErrInvalid.
func (e *Error) Is(target error) bool { return target == ErrInvalid }

// SizeError is returned by ParseSize for a string that is not a byte size.
type SizeError struct {
	// Size is the string as given.
	Size string
	// Reason says what is wrong with it, such as `unknown unit "QB"`.
	Reason string
}

func (e *SizeError) Error() string { return fmt.Sprintf("invalid size %q: %s", e.Size, e.Reason) }
