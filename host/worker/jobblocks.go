package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/blockhost/blockhost/abi"
	"github.com/blockhost/blockhost/host/executor"
	"github.com/blockhost/blockhost/host/job"
)

// JobBlocks is a Blocks that builds every step through a job.Service, the
// request model `blockhost run` and `blockhost batch` use: the same
// loading, the same grants and the same precedence (the operator's
// overrides, then the assignment's options, then the manifest, then the
// defaults). Each job type maps to a template request that names its
// block or manifest; an assignment fills in the input, ids and options.
type JobBlocks struct {
	svc   *job.Service
	types map[string]job.Request
}

// NewJobBlocks returns the Blocks of the job types in types, each a
// template naming a block (a module path or a built-in's name) or a
// manifest. It loads every block now, so that a configuration error
// shows at start rather than on the first assignment; the error is a
// *job.LoadError naming the block.
func NewJobBlocks(ctx context.Context, svc *job.Service, types map[string]job.Request) (*JobBlocks, error) {
	for t, tmpl := range types {
		probe := tmpl
		probe.Input = json.RawMessage(`{}`)
		if _, err := svc.Resolve(ctx, probe); errors.Is(err, job.ErrLoad) {
			return nil, fmt.Errorf("job type %q: %w", t, err)
		}
	}
	return &JobBlocks{svc: svc, types: maps.Clone(types)}, nil
}

// Types lists the job types, sorted.
func (b *JobBlocks) Types() []string { return slices.Sorted(maps.Keys(b.types)) }

// Step implements Blocks.
func (b *JobBlocks) Step(a *Assignment) (Step, error) {
	tmpl, ok := b.types[a.Job.Type]
	if !ok {
		return Step{}, &ValidationError{Reason: ReasonUnsupportedJobType, Field: "job.type",
			Message: fmt.Sprintf("job.type %q is not a block this worker runs (it runs %v)", a.Job.Type, b.Types())}
	}
	r := tmpl
	r.StepID, r.IdempotencyKey = a.AssignmentID, a.AssignmentID
	r.TenantID, r.TraceID, r.RunID = a.TenantID, a.TraceID, a.RunID
	var st Step
	adapt, output, dep := builtinAdapter(BuiltinName(r.Block))
	if r.Manifest != "" {
		adapt, output = nil, nil // a manifest's block takes the job as it is
	}
	if adapt != nil {
		in, args, d, err := adapt(a.Job)
		if err != nil {
			return Step{}, &ValidationError{Reason: ReasonInvalidJob, Field: "job", Message: err.Error()}
		}
		r.InputBase64, r.Args = in, append(slices.Clip(tmpl.Args), args...)
		if r.InputBase64 == nil {
			r.InputBase64 = []byte{}
		}
		if d != "" {
			dep = d
		}
		if r.Dependency == "" {
			r.Dependency = dep
		}
		job := a.Job
		st.Output = func(res *abi.StepResult) json.RawMessage { return output(job, res) }
	} else {
		r.Input = a.Job.Input()
	}
	if t, ok := a.Job.Fields["timeout_ms"]; ok {
		d, _ := positiveMS(t) // validated
		r.Timeout = job.Duration(d)
	}
	if o := a.Options; o != nil {
		if o.DeadlineMS > 0 {
			r.TotalDeadline = job.Duration(time.Duration(o.DeadlineMS) * time.Millisecond)
		}
		if o.Retry != nil && o.Retry.MaxAttempts > 0 {
			n := o.Retry.MaxAttempts
			r.Retry = &job.Retry{MaxAttempts: &n}
		}
		if o.Priority != "" {
			p, _ := executor.ParsePriority(o.Priority) // validated
			r.Priority = &p
		}
	}
	xr, err := b.svc.Resolve(context.Background(), r)
	var fe *job.FieldError
	switch {
	case errors.As(err, &fe):
		return Step{}, &ValidationError{Reason: ReasonInvalidJob, Field: "job", Message: fe.Error()}
	case err != nil:
		return Step{}, err
	}
	st.Request = xr
	return st, nil
}
