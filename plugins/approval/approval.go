// Package approval is the built-in block human.approval: a step that waits
// for a person's decision, with a deadline.
//
// Input:
//
//	{"prompt": "Deploy build 142 to production?", "timeout_ms": 600000,
//	 "approvers": ["ana@acme.example", "ben@acme.example"]}
//
// Output, when an approver decided:
//
//	{"approved": true, "approver": "ana@acme.example", "comment": "go",
//	 "approved_at": "2026-12-01T07:12:03.123Z"}
//
// A denial is a successful step whose output says "approved": false: the
// step did its job, which was to obtain a decision. No decision before
// the deadline ends the step as timeout (cancelled_by_timeout); cancelling
// it withdraws the request (cancelled, cancelled_by_user).
//
// The waiting itself is not done by this package's block body: a host that
// serves approvals (host/serve, host/worker) parks the step durably — no WebAssembly
// instance, no goroutine, no executor worker — until a decision, the
// deadline or a cancellation, and only then runs the block, with the
// decision in the step's context (WithDecision), to produce the result
// under the same contract as every other step. Run without a decision, as
// `blockhost run human.approval` would, the block fails with
// resource_unavailable saying so. This package holds what every such host
// shares: the input's validation, who may decide, and the results.
package approval

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/blockhost/blockhost/abi"
	"github.com/blockhost/blockhost/host"
	"github.com/blockhost/blockhost/plugins"
)

// Name is the block's name.
const Name = "human.approval"

// Limits of the input.
const (
	// MaxTimeout is the longest deadline a step may ask for: 30 days.
	MaxTimeout = 30 * 24 * time.Hour
	// MaxPrompt is the longest prompt, in bytes.
	MaxPrompt = 4096
	// MaxApprovers is the most approvers one step may name.
	MaxApprovers = 64
	// MaxComment is the longest comment of a decision, in bytes.
	MaxComment = 4096
)

func init() {
	plugins.Register(plugins.Plugin{
		Name:    Name,
		Summary: "wait for a person's decision, with a deadline (under blockhost serve or worker)",
		Run:     Run,
	})
}

// The states of an approval as the hosts store and show them: pending
// until one of the other four ends it.
const (
	StatePending   = "pending"
	StateApproved  = "approved"
	StateDenied    = "denied"
	StateExpired   = "expired"
	StateWithdrawn = "withdrawn"
)

// Input is the block's input.
type Input struct {
	// Prompt is what the approvers are asked. Required.
	Prompt string `json:"prompt"`
	// TimeoutMS is how long to wait for a decision, in milliseconds.
	// Required; at most MaxTimeout.
	TimeoutMS int64 `json:"timeout_ms"`
	// Approvers are the identities allowed to decide. Required.
	Approvers []string `json:"approvers"`
}

// Timeout is TimeoutMS as a duration.
func (in *Input) Timeout() time.Duration { return time.Duration(in.TimeoutMS) * time.Millisecond }

// ParseInput reads and validates a step's input. Its error is an
// *InputError naming the field.
func ParseInput(b []byte) (*Input, error) {
	var in Input
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if len(bytes.TrimSpace(b)) == 0 {
		return nil, &InputError{Field: "input", Problem: "missing: want {\"prompt\", \"timeout_ms\", \"approvers\"}"}
	}
	if err := dec.Decode(&in); err != nil {
		return nil, inputError(err)
	}
	switch {
	case strings.TrimSpace(in.Prompt) == "":
		return nil, &InputError{Field: "input.prompt", Problem: "missing or empty"}
	case len(in.Prompt) > MaxPrompt:
		return nil, &InputError{Field: "input.prompt", Problem: fmt.Sprintf("longer than %d bytes", MaxPrompt)}
	case in.TimeoutMS <= 0:
		return nil, &InputError{Field: "input.timeout_ms", Problem: "missing or not positive: say how long to wait for a decision"}
	case in.Timeout() > MaxTimeout:
		return nil, &InputError{Field: "input.timeout_ms", Problem: fmt.Sprintf("%d is more than %s", in.TimeoutMS, MaxTimeout)}
	case len(in.Approvers) == 0:
		return nil, &InputError{Field: "input.approvers", Problem: "missing or empty: name who may decide"}
	case len(in.Approvers) > MaxApprovers:
		return nil, &InputError{Field: "input.approvers", Problem: fmt.Sprintf("more than %d approvers", MaxApprovers)}
	}
	for i, a := range in.Approvers {
		if strings.TrimSpace(a) == "" || a != strings.TrimSpace(a) {
			return nil, &InputError{Field: fmt.Sprintf("input.approvers[%d]", i), Problem: fmt.Sprintf("%q is not an identity", a)}
		}
	}
	return &in, nil
}

// inputError names the field a decoding error is about.
func inputError(err error) *InputError {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) && te.Field != "" {
		return &InputError{Field: "input." + te.Field, Problem: fmt.Sprintf("want %s, not %s", te.Type, te.Value)}
	}
	if f, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		return &InputError{Field: "input." + strings.Trim(f, `"`), Problem: "unknown field"}
	}
	return &InputError{Field: "input", Problem: err.Error()}
}

// Allows reports whether identity may decide: it must be one of the
// approvers, exactly.
func (in *Input) Allows(identity string) bool {
	return identity != "" && slices.Contains(in.Approvers, identity)
}

// Decision is an approver's answer, and the block's output.
type Decision struct {
	Approved   bool      `json:"approved"`
	Approver   string    `json:"approver"`
	Comment    string    `json:"comment"`
	ApprovedAt time.Time `json:"approved_at"`
}

type decisionKey struct{}

// WithDecision returns ctx carrying d, for the block to return as its
// output.
func WithDecision(ctx context.Context, d Decision) context.Context {
	return context.WithValue(ctx, decisionKey{}, d)
}

// Run is the block's body: it returns the decision its context carries.
// It never waits; see the package comment.
func Run(ctx context.Context, call *host.Call) ([]byte, error) {
	d, ok := ctx.Value(decisionKey{}).(Decision)
	if !ok {
		return nil, abi.NewError(abi.CodeResourceUnavailable, abi.ClassPermanent,
			"human.approval waits for a person: run it under `blockhost serve` or `blockhost worker`, which hold the step until an approver decides")
	}
	if _, err := ParseInput(call.Step.Input); err != nil {
		return nil, abi.NewError(abi.CodeInvalidInput, abi.ClassPermanent, err.Error())
	}
	return json.Marshal(d)
}

// Expired is the result of a step nobody decided within timeout.
func Expired(stepID string, timeout, waited time.Duration) *abi.StepResult {
	return &abi.StepResult{
		StepID: stepID, Block: Name, Status: abi.StatusTimeout, Attempts: 1, LatencyMS: ms(waited),
		Error: abi.NewError(abi.CodeCancelledByTimeout, abi.ClassPermanent,
			fmt.Sprintf("no approver decided within %s", timeout)),
	}
}

// Withdrawn is the result of a step cancelled while it waited.
func Withdrawn(stepID string, why string, waited time.Duration) *abi.StepResult {
	return &abi.StepResult{
		StepID: stepID, Block: Name, Status: abi.StatusCancelled, Attempts: 1, LatencyMS: ms(waited),
		Error: abi.NewError(abi.CodeCancelledByUser, abi.ClassPermanent, "approval request withdrawn: "+why),
	}
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
