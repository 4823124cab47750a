package serve

import (
	"context"

	"github.com/blockhost/blockhost/host/executor"
	"github.com/blockhost/blockhost/host/job"
)

// jobRequest is a stored step as the request model (host/job) reads it:
// the block by its manifest or built-in name — grants, limits and schedule
// come from there, the operator's — and the input, priority and tenant
// from the step, the client's. run, batch and the worker build theirs from
// flags, JSON lines and messages the same way.
func (e *entry) jobRequest(r *stepRow) job.Request {
	jr := job.Request{StepID: r.ID, Input: r.Input, TenantID: r.Tenant, TraceID: r.TraceID}
	if e.manifest != nil {
		jr.Manifest = e.manifest.Path
	} else {
		jr.Block = e.name
	}
	if p, err := executor.ParsePriority(r.Priority); err == nil { // checked on submission
		jr.Priority = &p
	}
	return jr
}

// resolve turns a stored step into the executor's request through the
// request model, in the block's pool, with its start recorded durably
// before the block runs (tracked).
func (s *Server) resolve(ctx context.Context, r *stepRow, e *entry) (executor.Request, error) {
	xr, err := s.svc.Resolve(ctx, e.jobRequest(r))
	if err != nil {
		return xr, err
	}
	xr.Pool = e.pool
	xr.Runner = tracked{Runner: xr.Runner, s: s}
	return xr, nil
}

// defaultPriority is the priority of a step that names none: its
// manifest's, else normal.
func (e *entry) defaultPriority() string {
	if e.manifest != nil && e.manifest.Schedule.Priority != "" {
		return e.manifest.Schedule.Priority
	}
	return executor.PriorityNormal.String()
}
