package extism

import (
	"context"
	"fmt"
	"math"
	"net/http"

	"github.com/blockhost/blockhost/abi"
	"github.com/blockhost/blockhost/host/engine"
	"github.com/blockhost/blockhost/host/httpcap"
)

// Level is an Extism log level, numbered as Extism's get_log_level
// answers: trace 0 to error 4.
type Level int32

// Log levels.
const (
	LevelTrace Level = iota
	LevelDebug
	LevelInfo
	LevelWarn
	LevelError
	// LevelOff logs nothing.
	LevelOff Level = math.MaxInt32
)

// Defaults of CallConfig.
const (
	// DefaultMaxVarBytes is Extism's default cap on a plugin's vars.
	DefaultMaxVarBytes = 1 << 20
	// DefaultMaxBlockBytes caps the memory blocks when CallConfig does not.
	DefaultMaxBlockBytes = 64 << 20
)

// CallConfig is what one call of a plugin function may see and use. The
// zero value is a call with empty input that may use nothing.
type CallConfig struct {
	// Input is the plugin's input.
	Input []byte
	// Config is the plugin's configuration, read with config_get. It comes
	// from the operator, never from the input.
	Config map[string]string
	// HTTP sends the plugin's requests; nil denies every request.
	HTTP *httpcap.Session
	// Log receives the plugin's log messages at or above LogLevel; nil
	// discards them.
	Log func(level Level, msg string)
	// LogLevel is the lowest level Log wants, as get_log_level tells the
	// plugin. The zero value is trace.
	LogLevel Level
	// MaxBlockBytes caps the bytes of memory blocks the call may hold at
	// once; 0 means DefaultMaxBlockBytes.
	MaxBlockBytes uint64
	// MaxVarBytes caps the bytes of the call's vars, names and values; 0
	// means DefaultMaxVarBytes.
	MaxVarBytes uint64
}

// Call is the state of one call of a plugin function: its memory blocks,
// input, output, error, vars and last HTTP response. Make one per step
// with NewCall and put it in the context the engine passes to host
// functions with WithCall. It is used by the goroutine running the guest
// only; read its results once the guest is done.
type Call struct {
	cfg    CallConfig
	blocks blockStore

	inputOffset uint64 // 0 until the plugin asks for the input's offset
	outOffset   uint64
	outLength   uint64
	errOffset   uint64

	vars     map[string][]byte
	varBytes uint64

	status  int32
	headers map[string]string

	hostCalls uint64
	// failure is the error the host stopped the guest with, if any.
	failure *abi.Error
}

// NewCall returns the state of a call under cfg.
func NewCall(cfg CallConfig) *Call {
	if cfg.MaxBlockBytes == 0 {
		cfg.MaxBlockBytes = DefaultMaxBlockBytes
	}
	if cfg.MaxVarBytes == 0 {
		cfg.MaxVarBytes = DefaultMaxVarBytes
	}
	c := &Call{cfg: cfg}
	c.blocks.limit = cfg.MaxBlockBytes
	return c
}

type callKey struct{}

// WithCall returns ctx carrying c, for the host functions of the run.
func WithCall(ctx context.Context, c *Call) context.Context {
	return context.WithValue(ctx, callKey{}, c)
}

// HostCalls counts the plugin's calls of extism:host/env.
func (c *Call) HostCalls() uint64 { return c.hostCalls }

// Failure is the error the host stopped the plugin with — a denied HTTP
// request, memory blocks past their cap, a full var store — or nil.
func (c *Call) Failure() *abi.Error { return c.failure }

// Output returns the plugin's output: the bytes of the span it last gave
// output_set, read now, as Extism reads them when the function returns.
func (c *Call) Output() []byte {
	b, _ := c.blocks.span(c.outOffset, c.outLength)
	return b
}

// Error returns the plugin's error message, set with error_set, read now;
// empty when it set none.
func (c *Call) Error() string {
	if c.errOffset == 0 {
		return ""
	}
	b, _ := c.blocks.bytes(c.errOffset)
	return string(b)
}

// enter starts every host function: it finds the call, counts the host
// call and stops the guest once the step is over.
func enter(ctx context.Context) *Call {
	c, ok := ctx.Value(callKey{}).(*Call)
	if !ok || c == nil {
		panic(&engine.Trap{Message: ErrNoCall.Error()})
	}
	c.hostCalls++
	if ctx.Err() != nil {
		// The engine reports the run as interrupted: the context has ended.
		panic(stepOver)
	}
	return c
}

// stepOver stops a guest whose step is over; the engine reports the run
// as interrupted, since its context has ended.
var stepOver = &engine.Trap{Message: "extism: the step is over"}

// trap stops the guest for misusing the ABI.
func trap(format string, args ...any) {
	panic(&engine.Trap{Message: "extism: " + fmt.Sprintf(format, args...)})
}

// fail stops the guest with err as the step's error.
func (c *Call) fail(err *abi.Error) {
	c.failure = err
	panic(&engine.Trap{Message: "extism: " + err.Message})
}

// headerMap is the last response's headers as Extism gives them: names in
// lower case, repeated fields joined with commas.
func headerMap(h http.Header) map[string]string {
	out := make(map[string]string, len(h))
	for k, v := range h {
		joined := ""
		for i, s := range v {
			if i > 0 {
				joined += ","
			}
			joined += s
		}
		out[lower(k)] = joined
	}
	return out
}

func lower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

func quotaError(msg string) *abi.Error {
	return abi.NewError(abi.CodeQuotaExceeded, abi.ClassPermanent, msg)
}
