package approval

import (
	"errors"
	"fmt"
)

// ErrInvalidInput matches every *InputError.
var ErrInvalidInput = errors.New("approval: invalid input")

// InputError says which field of a human.approval input is wrong.
type InputError struct {
	// Field is the JSON path, such as "input.timeout_ms".
	Field string
	// Problem says what is wrong with it.
	Problem string
}

func (e *InputError) Error() string { return fmt.Sprintf("approval: %s: %s", e.Field, e.Problem) }

// Is matches ErrInvalidInput.
func (e *InputError) Is(target error) bool { return target == ErrInvalidInput }
