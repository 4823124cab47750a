package abi

import (
	"encoding/json"
	"fmt"
)

// StepResult is the wire form of a finished step: what `blockhost run`
// prints and what the host's Go API returns. Exactly one of Output,
// OutputText and OutputBase64 is set when the block wrote output: Output
// when the bytes are valid JSON, OutputText when they are other UTF-8 text,
// OutputBase64 otherwise.
type StepResult struct {
	StepID string `json:"step_id"`
	Block  string `json:"block"`
	// Module is the digest of the module that ran the step, "sha256:"
	// and 64 lower-case hex digits; empty for a built-in block.
	Module       string          `json:"module,omitempty"`
	Status       Status          `json:"status"`
	Output       json.RawMessage `json:"output,omitempty"`
	OutputText   *string         `json:"output_text,omitempty"`
	OutputBase64 []byte          `json:"output_base64,omitempty"`
	Error        *Error          `json:"error,omitempty"`
	LatencyMS    float64         `json:"latency_ms"`
	Attempts     int             `json:"attempts"`
	RetriesUsed  int             `json:"retries_used"`
	Usage        Usage           `json:"usage"`
}

// Usage is what one step consumed.
type Usage struct {
	WallMS          float64 `json:"wall_ms"`
	PeakMemoryBytes uint64  `json:"peak_memory_bytes"`
	BytesIn         uint64  `json:"bytes_in"`
	BytesOut        uint64  `json:"bytes_out"`
	HostCalls       uint64  `json:"host_calls"`
}

// Error describes why a step did not succeed.
type Error struct {
	// Code is one of the defined codes; Name is its name.
	Code Code   `json:"code"`
	Name string `json:"name"`
	// Class says whether the step may succeed if tried again.
	Class Class `json:"class"`
	// Message is for people.
	Message string `json:"message"`
	// ExitCode is the guest's exit code when it exited with a non-zero one.
	ExitCode *uint32 `json:"exit_code,omitempty"`
	// RetryAfterMS, when set, is how many milliseconds the caller should
	// wait before trying again: a dependency's Retry-After (HTTP 429 or
	// 503), or the host's own hint when it refuses work because it is
	// overloaded or a dependency's circuit is open. Only the host sets it.
	RetryAfterMS *int64 `json:"retry_after_ms,omitempty"`
}

// NewError returns an Error with the code's name filled in.
func NewError(code Code, class Class, msg string) *Error {
	return &Error{Code: code, Name: code.Name(), Class: class, Message: msg}
}

// Error implements error: "quota_exceeded(2004) permanent: memory ...".
func (e *Error) Error() string {
	return fmt.Sprintf("%s %s: %s", e.Code, e.Class, e.Message)
}
