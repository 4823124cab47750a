package wasmbin

import (
	"errors"
	"fmt"
)

// ErrMalformed is matched (errors.Is) by every error this package returns:
// the bytes are not a module, or not the part of one that was asked for.
var ErrMalformed = errors.New("wasmbin: malformed module")

// Error says what could not be decoded and where.
type Error struct {
	// Offset is the position of the problem: in the module when the
	// reader was made by Section.Reader or Parse, otherwise in the bytes
	// the reader was given.
	Offset int
	// What describes the problem, for people.
	What string
}

func (e *Error) Error() string {
	return fmt.Sprintf("wasmbin: malformed module: %s at offset %d", e.What, e.Offset)
}

// Is makes every *Error match ErrMalformed.
func (e *Error) Is(target error) bool { return target == ErrMalformed }
