package snapshot

import "errors"

// ErrUnsupported is matched (errors.Is) by every error saying why a module
// cannot be started from a snapshot: the rewrite does not cover something
// it has or does, such as an imported memory or a passive data segment.
// The module then runs as it is, initialisation included.
var ErrUnsupported = errors.New("snapshot: module not supported")

// UnsupportedError says what of a module rules a snapshot out.
type UnsupportedError struct {
	// What names it, for people: "an imported memory".
	What string
}

func (e *UnsupportedError) Error() string { return "snapshot: module has " + e.What }

// Is makes every *UnsupportedError match ErrUnsupported.
func (e *UnsupportedError) Is(target error) bool { return target == ErrUnsupported }

func unsupported(what string) error { return &UnsupportedError{What: what} }
