package job

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/blockhost/blockhost/abi"
	"github.com/blockhost/blockhost/host/executor"
	"github.com/blockhost/blockhost/host/manifest"
)

// Request is one step to run, in the form operators write: a line of
// `blockhost batch`, a worker's message, a server's request body. Its JSON
// field names are the documented ones (docs/cli.md, "The request line").
// A zero field is unset: the manifest's value, the overrides' or the
// default applies (see the package comment for the order).
type Request struct {
	// StepID names the step in its result; empty lets the caller (or the
	// executor) choose one.
	StepID string `json:"step_id,omitempty"`
	// Block is a module path or a built-in block's name (package
	// plugins): the built-in runs when no file of that name exists.
	// Exactly one of Block and Manifest is required.
	Block string `json:"block,omitempty"`
	// Manifest is the path of a block manifest (docs/manifest.md).
	Manifest string `json:"manifest,omitempty"`
	// SHA256 pins the module: 64 hexadecimal digits, optionally after
	// "sha256:". A request whose block or manifest names another module
	// (or a built-in block) is refused (ErrPinMismatch), on top of the
	// manifest's own pin.
	SHA256 string `json:"sha256,omitempty"`
	// PinnedBy names where SHA256 came from, for the error of a module
	// that differs ("the <PinnedBy> pins …"): "request's sha256" when
	// empty. A caller that pins from its own configuration (the worker's
	// --block and --config) names it. Never read from JSON.
	PinnedBy string `json:"-"`

	// Input is the step's input as JSON text. At most one of Input,
	// InputText and InputBase64 may be set.
	Input json.RawMessage `json:"input,omitempty"`
	// InputText is the input as these bytes.
	InputText *string `json:"input_text,omitempty"`
	// InputBase64 is the input as raw bytes (base64 in JSON).
	InputBase64 []byte `json:"input_base64,omitempty"`

	// Args replaces the guest's argv after its name.
	Args []string `json:"args,omitempty"`
	// Env adds environment variables to the manifest's.
	Env map[string]string `json:"env,omitempty"`

	// Priority orders the step in its queue: a name or -1 to 2.
	Priority *executor.Priority `json:"priority,omitempty"`
	// Timeout bounds each attempt.
	Timeout Duration `json:"timeout,omitempty"`
	// Memory caps the guest's linear memory.
	Memory Size `json:"memory,omitempty"`
	// OutputLimit caps the step's output.
	OutputLimit Size `json:"output_limit,omitempty"`
	// TotalDeadline bounds all attempts and the waits between them.
	TotalDeadline Duration `json:"total_deadline,omitempty"`
	// QueueTimeout bounds the wait for the first attempt.
	QueueTimeout Duration `json:"queue_timeout,omitempty"`
	// Retry is the step's retry policy; unset fields come from the
	// manifest, the overrides or the default.
	Retry *Retry `json:"retry,omitempty"`

	// TenantID is whom the step runs for (a pool's tenant limit).
	TenantID string `json:"tenant_id,omitempty"`
	// TraceID, RunID and FlowID correlate the step with the work around
	// it; they are logged.
	TraceID string `json:"trace_id,omitempty"`
	RunID   string `json:"run_id,omitempty"`
	FlowID  string `json:"flow_id,omitempty"`
	// IdempotencyKey makes a request whose key is held by a step still
	// running share that step's result instead of running again.
	IdempotencyKey string `json:"idempotency_key,omitempty"`
	// Dependency names what the step depends on, for its circuit breaker
	// and retry budget.
	Dependency string `json:"dependency,omitempty"`
}

// Retry is a request's retry policy. A nil field is unset.
type Retry struct {
	// MaxAttempts counts the first attempt; at least 1.
	MaxAttempts *int `json:"max_attempts,omitempty"`
	// BackoffInitial bounds the first wait.
	BackoffInitial Duration `json:"backoff_initial,omitempty"`
	// BackoffMultiplier grows the bound after each wait; at least 1.
	BackoffMultiplier *float64 `json:"backoff_multiplier,omitempty"`
	// BackoffMax caps every wait.
	BackoffMax Duration `json:"backoff_max,omitempty"`
	// NonRetryable lists codes never retried, by name or number.
	NonRetryable []abi.Code `json:"non_retryable,omitempty"`
}

// Duration is a positive duration: in JSON, a string such as "1.5s" or a
// number of milliseconds. Zero is unset.
type Duration time.Duration

// UnmarshalJSON reads "1.5s" or a positive number of milliseconds.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		v, err := time.ParseDuration(s)
		if err != nil || v <= 0 {
			return fmt.Errorf("%q is not a positive duration such as \"500ms\" or \"5s\"", s)
		}
		*d = Duration(v)
		return nil
	}
	var ms float64
	if err := json.Unmarshal(b, &ms); err != nil || ms <= 0 || ms > float64(math.MaxInt64/int64(time.Millisecond)) {
		return fmt.Errorf("%s is not a duration: use a string such as \"5s\" or a positive number of milliseconds", b)
	}
	*d = Duration(ms * float64(time.Millisecond))
	return nil
}

// MarshalJSON writes the duration as a string such as "1.5s".
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// Size is a positive number of bytes: in JSON, a string with a unit such as
// "64MiB" (B, KB, KiB, MB, MiB, GB, GiB) or a number of bytes. Zero is unset.
type Size uint64

// UnmarshalJSON reads "64MiB" or a positive number of bytes.
func (s *Size) UnmarshalJSON(b []byte) error {
	var str string
	if err := json.Unmarshal(b, &str); err == nil {
		n, err := manifest.ParseSize(str)
		if err != nil || n == 0 {
			return fmt.Errorf("%q is not a positive size such as \"64MiB\" (units B, KB, KiB, MB, MiB, GB, GiB)", str)
		}
		*s = Size(n)
		return nil
	}
	var n uint64
	if err := json.Unmarshal(b, &n); err != nil || n == 0 {
		return fmt.Errorf("%s is not a size: use a string such as \"64MiB\" or a positive number of bytes", b)
	}
	*s = Size(n)
	return nil
}

// ParseRequest reads one request from its JSON text. Unknown fields and
// trailing data are errors. On failure it returns a *FieldError naming the
// first wrong field, and a Request holding the step_id whenever the text
// is a JSON object with a string step_id, so that the failure can be
// reported under the step's own ID.
func ParseRequest(b []byte) (Request, error) {
	var r Request
	if err := strictDecode(b, &r); err == nil {
		return r, nil
	}
	// Find out which field is wrong, and keep the step_id.
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(b, &fields); err != nil {
		return Request{}, &FieldError{Problem: "not a JSON object: " + jsonProblem(err), Syntax: true}
	}
	var id string
	if raw, ok := fields["step_id"]; ok {
		_ = json.Unmarshal(raw, &id)
	}
	keys := make([]string, 0, len(fields))
	for k := range fields {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		one, _ := json.Marshal(map[string]json.RawMessage{k: fields[k]})
		if err := strictDecode(one, &Request{}); err != nil {
			if strings.Contains(err.Error(), "unknown field") {
				return Request{StepID: id}, &FieldError{StepID: id, Field: k, Problem: "unknown field", Syntax: true}
			}
			// A value of the wrong JSON type is a format error; one the
			// field's own parser refuses ("-1s", "urgent") is out of range.
			var te *json.UnmarshalTypeError
			var se *json.SyntaxError
			syntax := errors.As(err, &te) || errors.As(err, &se)
			return Request{StepID: id}, &FieldError{StepID: id, Field: k, Problem: jsonProblem(err), Syntax: syntax}
		}
	}
	return Request{StepID: id}, &FieldError{StepID: id, Problem: "not a step request: duplicate or malformed fields", Syntax: true}
}

func strictDecode(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("data after the JSON object")
	}
	return nil
}

// jsonProblem says what encoding/json found wrong, without Go type names.
func jsonProblem(err error) string {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return fmt.Sprintf("a JSON %s is not allowed here", te.Value)
	}
	return strings.TrimPrefix(err.Error(), "json: ")
}
