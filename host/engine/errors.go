package engine

import "errors"

// ErrInterrupted is returned by Module.Run when the run's context ended it.
// Which of timeout or cancellation it was is the caller's to decide from
// context.Cause.
var ErrInterrupted = errors.New("engine: execution interrupted")

// ErrUnknownEngine is returned when no engine is registered under a name.
var ErrUnknownEngine = errors.New("engine: unknown engine")

// Trap is a guest trap: unreachable, out-of-bounds access, stack
// overflow, integer divide by zero and the like.
type Trap struct {
	// Message is the engine's description, such as "out of bounds memory
	// access".
	Message string
	// StackOverflow is true when the trap was a call stack exhaustion.
	StackOverflow bool
}

func (t *Trap) Error() string { return "wasm trap: " + t.Message }

// ErrUnavailable is returned by an engine's Factory when the engine is
// registered but cannot run in this build, such as a cgo engine in a
// binary built with CGO_ENABLED=0. The error's message says why and what
// to do instead.
var ErrUnavailable = errors.New("engine: unavailable in this build")

// FormatError is returned by Engine.Compile when the bytes are not a
// WebAssembly module the engine can compile, found from their header
// before the engine sees them: no "\0asm" magic, a binary version other
// than 1, or a component rather than a core module.
type FormatError struct {
	// Reason says what is wrong, for people.
	Reason string
}

func (e *FormatError) Error() string { return e.Reason }

// ErrClosed is returned by Module.Run once the module or its engine is
// closed, and by Engine.Compile once the engine is. The run never started:
// nothing of it ran.
var ErrClosed = errors.New("engine: closed")
