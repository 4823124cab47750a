package host

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/blockhost/blockhost/abi"
	"github.com/blockhost/blockhost/host/capability"
)

// Runner runs steps of one block. *Block (a WebAssembly block) and
// *NativeBlock (a built-in block) implement it; the executor and the CLI
// run either through it.
type Runner interface {
	Name() string
	Run(ctx context.Context, step Step) *abi.StepResult
}

var (
	_ Runner = (*Block)(nil)
	_ Runner = (*NativeBlock)(nil)
)

// NativeFunc is the body of a built-in block: trusted Go code that runs
// as a step under the same contract as a WebAssembly block — the same
// grants, limits, statuses and result. It returns the step's output, or an
// error: an *abi.Error is the step's error as it is; any other error is
// execution_failed, permanent. It must return promptly once ctx is done.
type NativeFunc func(ctx context.Context, call *Call) ([]byte, error)

// Call is what a built-in block sees of its step.
type Call struct {
	// Step is the step as submitted, with limits resolved against the
	// runtime's defaults and an ID set.
	Step Step
	// Logger carries the step_id and block fields.
	Logger hclog.Logger
	// Audit records a capability's use or refusal in the runtime's audit
	// log, as the host does for a WebAssembly block's host calls: a
	// built-in block passes it to the capability sessions it opens
	// (httpcap.SessionConfig.Audit, fscap.Config.Audit). Never nil; it
	// does nothing when the runtime keeps no audit log.
	Audit func(capability.Event)
}

// NativeBlock is a built-in block bound to a runtime.
type NativeBlock struct {
	rt   *Runtime
	name string
	fn   NativeFunc
}

// Native returns a built-in block running fn under name.
func (r *Runtime) Native(name string, fn NativeFunc) *NativeBlock {
	return &NativeBlock{rt: r, name: name, fn: fn}
}

// Name is the block's name.
func (b *NativeBlock) Name() string { return b.name }

// Run runs one step. Like Block.Run it always returns exactly one result,
// decides timeout and cancelled from the recorded cause, and turns a panic
// into an internal_error result.
func (b *NativeBlock) Run(ctx context.Context, step Step) (res *abi.StepResult) {
	start := time.Now()
	step.Limits = step.Limits.Or(b.rt.limits)
	if step.ID == "" {
		step.ID = newStepID()
	}
	res = &abi.StepResult{StepID: step.ID, Block: b.name, Attempts: 1}
	logger := b.rt.logger.Named("block").With("step_id", step.ID, "block", b.name)
	audit := stepAuditor{log: b.rt.audit, stepID: step.ID, block: b.name}
	audit.start(&step, step.Limits)
	// Deferred first, so it runs last: the record has the final result.
	defer func() { audit.end(res) }()
	ctx, cancel := context.WithTimeoutCause(ctx, step.Limits.Timeout, ErrStepTimeout)
	defer cancel()
	defer func() {
		if p := recover(); p != nil {
			res.Status, res.Error = abi.StatusError, abi.NewError(abi.CodeInternalError, abi.ClassPermanent,
				fmt.Sprintf("built-in block failed: %v", p))
			logger.Error("panic in a built-in block", "panic", p)
		}
		res.Usage.BytesIn = uint64(len(step.Input))
		res.Usage.WallMS = ms(time.Since(start))
		res.LatencyMS = res.Usage.WallMS
	}()
	if ctx.Err() != nil {
		endedResult(ctx, res, step.Limits.Timeout)
		return res
	}
	out, err := b.fn(ctx, &Call{Step: step, Logger: logger, Audit: audit.event})
	if ctx.Err() != nil || deadlinePassed(ctx) {
		endedResult(ctx, res, step.Limits.Timeout)
		return res
	}
	if uint64(len(out)) > step.Limits.Output {
		res.Status = abi.StatusError
		res.Error = abi.NewError(abi.CodeQuotaExceeded, abi.ClassPermanent,
			fmt.Sprintf("output is over the output limit of %s", sizeString(step.Limits.Output)))
		return res
	}
	res.Usage.BytesOut = uint64(len(out))
	setOutput(res, out)
	if err != nil {
		res.Status = abi.StatusError
		var ae *abi.Error
		if errors.As(err, &ae) {
			res.Error = ae
		} else {
			res.Error = abi.NewError(abi.CodeExecutionFailed, abi.ClassPermanent, err.Error())
		}
		return res
	}
	res.Status = abi.StatusSuccess
	return res
}
