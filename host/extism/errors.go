package extism

import "errors"

// Errors of the package, compared with errors.Is.
var (
	// ErrNoCall: a host function of extism:host/env ran without a Call in
	// its context (WithCall was not used).
	ErrNoCall = errors.New("extism: no call in the context")
	// ErrFunction: the plugin function asked for cannot be called: it is
	// not exported, or takes parameters, or returns more than one value.
	ErrFunction = errors.New("extism: function cannot be called")
)

// FunctionError says why a plugin function cannot be called. It matches
// ErrFunction.
type FunctionError struct {
	// Function is the name asked for.
	Function string
	// Reason says what is wrong with it.
	Reason string
}

func (e *FunctionError) Error() string {
	return "extism: function " + quote(e.Function) + " " + e.Reason
}

// Is matches ErrFunction.
func (e *FunctionError) Is(target error) bool { return target == ErrFunction }
