package sdk

import "sync/atomic"

// stepInput is the input Run read for the step in progress, so that Input
// returns it without a second copy.
var stepInput atomic.Pointer[[]byte]

// Input returns the current step's input exactly as the host holds it:
// raw bytes, not decoded. While Run runs a handler it returns the same
// slice the handler was given — no copy — so a JSONHandler function can
// also hash or store the input as it came; the caller must not modify it.
// Outside Run it reads the input from the host.
//
// Input is also the way to a large JSON input: decoding it into structs
// with RunJSON holds the input and its decoded copy in memory at once,
// while a Run handler can walk the same bytes with a json.Decoder,
// token by token (docs/authoring.md, "Large input").
//
// The error matches ErrTimeout or ErrCancelled once the step is over, and
// ErrUnavailable outside a step (a native build without sdktest).
func Input() ([]byte, error) {
	if in := stepInput.Load(); in != nil {
		return *in, nil
	}
	return readInput()
}
