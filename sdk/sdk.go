package sdk

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/blockhost/blockhost/abi"
	"github.com/blockhost/blockhost/sdk/internal/hostcall"
)

// Handler does a block's work for one step: it gets the step's input and
// returns its output. On error the output is discarded and the step fails
// with the error's code and class (see Run).
type Handler func(ctx context.Context, input []byte) ([]byte, error)

// maxMessage is the length at which the host cuts an error message
// (docs/abi.md §4). The sdk cuts first, at a UTF-8 boundary, so the host
// never splits a character.
const maxMessage = 4096

// Run runs h for the current step and reports its result to the host. Call
// it once, from main; it returns when the result is reported, and main
// should then return.
//
// Run reads the whole input, calls h with a context that carries the step's
// deadline, and writes h's output, if any. If h returns an error, Run calls
// the host's error_set with the code and class of the first *Error in the
// error's chain (errors.As) — execution_failed and permanent if there is
// none — and the error's text as the message. If h panics, Run records
// execution_failed with the panic value, then panics again so the stack
// trace reaches the host's log.
//
// If the step is already over when Run asks the host for something (its
// deadline passed or it was cancelled), Run returns at once: the host has
// decided the result. Any other failure to read the input or the deadline,
// or to write the output, ends the step with internal_error.
//
// In a native build Run needs the fake host of package sdktest and panics
// without it.
func Run(h Handler) {
	if !hostcall.Available() {
		panic("sdk: Run called outside a step: build with GOOS=wasip1 GOARCH=wasm, or run the handler with sdktest.Call")
	}
	input, err := readInput()
	if err != nil {
		hostFailed("reading input", err)
		return
	}
	ctx, cancel, err := stepContext()
	if err != nil {
		hostFailed("reading the deadline", err)
		return
	}
	defer cancel()
	stepInput.Store(&input)
	defer stepInput.Store(nil)

	defer func() {
		if p := recover(); p != nil {
			report(fmt.Errorf("panic: %v", p), abi.CodeExecutionFailed)
			panic(p)
		}
	}()
	out, err := h(ctx, input)
	if err != nil {
		report(err, abi.CodeExecutionFailed)
		return
	}
	if len(out) > 0 {
		err := callErr(abi.FuncOutputWrite, hostcall.OutputWrite(out))
		// Over the cap the host itself ends the step as quota_exceeded
		// (docs/abi.md §6, rule 4), so only other refusals are reported.
		if !errors.Is(err, ErrLimit) {
			hostFailed("writing output", err)
		}
	}
}

// hostFailed reports a failed host call as the step's internal_error. A
// call fails that way once the step is over, and then nothing is left to
// report; nil means the call succeeded.
func hostFailed(doing string, err error) {
	if err != nil && !stepOver(err) {
		report(fmt.Errorf("sdk: %s: %w", doing, err), abi.CodeInternalError)
	}
}

// readInput returns the step's whole input.
func readInput() ([]byte, error) {
	n, r := hostcall.InputLen()
	if err := callErr(abi.FuncInputLen, r); err != nil {
		return nil, err
	}
	if n == 0 {
		return []byte{}, nil
	}
	buf := make([]byte, n)
	got, r := hostcall.InputRead(buf)
	if err := callErr(abi.FuncInputRead, r); err != nil {
		return nil, err
	}
	if got != n {
		return nil, &CallError{Func: abi.FuncInputRead, Result: abi.ResultIO}
	}
	return buf, nil
}

// stepContext returns the handler's context: one with the step's deadline,
// whose cause is ErrTimeout, or a plain one when the step has none.
func stepContext() (context.Context, context.CancelFunc, error) {
	ns, r := hostcall.Deadline()
	if err := callErr(abi.FuncDeadline, r); err != nil {
		return nil, nil, err
	}
	if ns < 0 {
		ctx, cancel := context.WithCancel(context.Background())
		return ctx, cancel, nil
	}
	ctx, cancel := context.WithDeadlineCause(context.Background(), time.Now().Add(time.Duration(ns)), ErrTimeout)
	return ctx, cancel, nil
}

// report records err as the step's error. fallback is the code for an
// error with no *Error in its chain. A code or class the host refuses is
// reported as execution_failed, with the refused values in the message.
func report(err error, fallback abi.Code) {
	code, class := fallback, abi.ClassPermanent
	if se, ok := errors.AsType[*Error](err); ok {
		code, class = se.Code, se.Class
	}
	msg := cutMessage(err.Error())
	rerr := callErr(abi.FuncErrorSet, hostcall.ErrorSet(uint32(code), uint32(class), msg))
	if errors.Is(rerr, ErrInvalid) {
		msg = cutMessage(fmt.Sprintf("sdk: block reported invalid code %d or class %d: %s", uint32(code), uint32(class), msg))
		hostcall.ErrorSet(uint32(abi.CodeExecutionFailed), uint32(abi.ClassPermanent), msg)
	}
}

// cutMessage makes s valid UTF-8 of at most maxMessage bytes, cutting at a
// character boundary.
func cutMessage(s string) string {
	s = validText(s)
	if len(s) <= maxMessage {
		return s
	}
	i := maxMessage
	for i > 0 && !utf8.RuneStart(s[i]) {
		i--
	}
	return s[:i]
}

// RunJSON runs fn for the current step with the input decoded from JSON
// into an In and the output encoded to JSON from an Out. It is Run of
// JSONHandler(fn).
func RunJSON[In, Out any](fn func(ctx context.Context, in In) (Out, error)) {
	Run(JSONHandler(fn))
}

// JSONHandler adapts fn to a Handler that decodes the input as JSON into an
// In and encodes fn's result as JSON. Input that is not valid JSON for In,
// empty input included, ends the step with invalid_input, permanent, and
// fn is not called. An Out that cannot be encoded ends it with
// execution_failed.
func JSONHandler[In, Out any](fn func(ctx context.Context, in In) (Out, error)) Handler {
	return func(ctx context.Context, input []byte) ([]byte, error) {
		var in In
		if err := json.Unmarshal(input, &in); err != nil {
			return nil, Errorf(abi.CodeInvalidInput, abi.ClassPermanent, "sdk: input is not valid JSON for %T: %w", in, err)
		}
		out, err := fn(ctx, in)
		if err != nil {
			return nil, err
		}
		b, err := json.Marshal(out)
		if err != nil {
			return nil, Errorf(abi.CodeExecutionFailed, abi.ClassPermanent, "sdk: encoding output as JSON: %w", err)
		}
		return b, nil
	}
}

// validText returns s with each run of invalid UTF-8 replaced by U+FFFD:
// the host takes messages as UTF-8.
func validText(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	return strings.ToValidUTF8(s, "\uFFFD")
}
