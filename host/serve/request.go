package serve

import (
	"github.com/blockhost/blockhost/host"
	"github.com/blockhost/blockhost/host/executor"
)

// request turns a stored step into the executor's request: the block,
// grants and limits from the catalog (the operator's), the input,
// priority and tenant from the step (the client's).
//
// This is the server's one adapter to the request model; run and batch
// build theirs from flags and JSON lines the same way.
func (e *entry) request(r *stepRow, runner host.Runner) executor.Request {
	prio, _ := executor.ParsePriority(r.Priority) // checked on submission
	req := executor.Request{
		Runner:   runner,
		Step:     host.Step{ID: r.ID, Input: r.Input, Grants: e.grants, Limits: e.limits},
		Pool:     e.pool,
		Priority: prio,
		TenantID: r.Tenant,
		TraceID:  r.TraceID,
	}
	if m := e.manifest; m != nil {
		args := m.Args
		req.Step.Args = args
		s := m.Schedule
		req.TotalDeadline, req.QueueTimeout = s.TotalDeadline, s.QueueTimeout
		req.Retry = executor.RetryPolicy{MaxAttempts: s.Retry.MaxAttempts, Initial: s.Retry.BackoffInitial,
			Multiplier: s.Retry.BackoffMultiplier, MaxInterval: s.Retry.BackoffMax, NonRetryable: s.Retry.NonRetryable}
	}
	return req
}

// defaultPriority is the priority of a step that names none: its
// manifest's, else normal.
func (e *entry) defaultPriority() string {
	if e.manifest != nil && e.manifest.Schedule.Priority != "" {
		return e.manifest.Schedule.Priority
	}
	return executor.PriorityNormal.String()
}
