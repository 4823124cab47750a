package serve

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"
	"unicode/utf8"

	"github.com/blockhost/blockhost/abi"
	"github.com/blockhost/blockhost/host/executor"
	"github.com/blockhost/blockhost/plugins/approval"
)

// Submission is the body of POST /v1/steps.
type Submission struct {
	// Block names a block of the catalog. Required.
	Block string `json:"block"`
	// Input is the step's input, any JSON value.
	Input json.RawMessage `json:"input"`
	// Priority is low, normal, high or critical; default the block
	// manifest's, else normal.
	Priority string `json:"priority"`
	// Tenant, when set, must be the token's tenant.
	Tenant string `json:"tenant"`
	// IdempotencyKey makes a second submission with the same key, by the
	// same tenant, return the first step instead of a new one — for as
	// long as the store keeps it.
	IdempotencyKey string `json:"idempotency_key"`
	// MayRerun allows the step to run again from the start when the host
	// stopped while it ran, if its block is marked idempotent.
	MayRerun bool `json:"may_rerun"`
	// TraceID correlates the step with the work around it.
	TraceID string `json:"trace_id"`
}

// Limits of a submission's fields.
const (
	maxKey   = 256
	maxTrace = 128
)

// StepView is a step as the API shows it.
type StepView struct {
	ID             string          `json:"id"`
	Block          string          `json:"block"`
	Tenant         string          `json:"tenant"`
	Status         string          `json:"status"`
	Priority       string          `json:"priority"`
	Pool           string          `json:"pool"`
	SubmittedBy    string          `json:"submitted_by"`
	IdempotencyKey string          `json:"idempotency_key,omitempty"`
	MayRerun       bool            `json:"may_rerun,omitempty"`
	TraceID        string          `json:"trace_id,omitempty"`
	CreatedAt      time.Time       `json:"created_at"`
	StartedAt      *time.Time      `json:"started_at,omitempty"`
	FinishedAt     *time.Time      `json:"finished_at,omitempty"`
	Approval       *ApprovalView   `json:"approval,omitempty"`
	Result         *abi.StepResult `json:"result,omitempty"`
}

// ApprovalView is a human.approval step's request and decision.
type ApprovalView struct {
	Prompt    string     `json:"prompt"`
	Approvers []string   `json:"approvers"`
	Deadline  time.Time  `json:"deadline"`
	State     string     `json:"state"`
	Approver  string     `json:"approver,omitempty"`
	Comment   string     `json:"comment,omitempty"`
	DecidedAt *time.Time `json:"decided_at,omitempty"`
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

func (r *stepRow) view() *StepView {
	v := &StepView{ID: r.ID, Block: r.Block, Tenant: r.Tenant, Status: r.State, Priority: r.Priority, Pool: r.Pool,
		SubmittedBy: r.SubmittedBy, IdempotencyKey: r.IdempotencyKey, MayRerun: r.MayRerun, TraceID: r.TraceID,
		CreatedAt: r.Created, StartedAt: timePtr(r.Started), FinishedAt: timePtr(r.Finished), Result: r.Result}
	if a := r.Approval; a != nil {
		v.Approval = &ApprovalView{Prompt: a.Prompt, Approvers: a.Approvers, Deadline: a.Deadline, State: a.State,
			Approver: a.Approver, Comment: a.Comment, DecidedAt: timePtr(a.Decided)}
	}
	return v
}

// submit validates and stores a submission and starts it. replay reports
// that an earlier step with the same idempotency key was returned.
func (s *Server) submit(ctx context.Context, p principal, sub *Submission) (r *stepRow, replay bool, _ *apiError) {
	if s.isDraining() {
		return nil, false, errUnavailable("the server is shutting down")
	}
	e := s.cat[sub.Block]
	switch {
	case sub.Block == "":
		return nil, false, errField("block", "missing: name a block of GET /v1/blocks")
	case e == nil:
		return nil, false, errField("block", fmt.Sprintf("no block %q is served (see GET /v1/blocks)", sub.Block))
	case sub.Tenant != "" && sub.Tenant != p.tenant && p != local:
		return nil, false, &apiError{Status: http.StatusForbidden, Code: "forbidden", Field: "tenant",
			Message: fmt.Sprintf("the token of %q acts for tenant %q, not %q", p.identity, p.tenant, sub.Tenant)}
	case len(sub.IdempotencyKey) > maxKey || !utf8.ValidString(sub.IdempotencyKey):
		return nil, false, errField("idempotency_key", fmt.Sprintf("longer than %d bytes or not UTF-8", maxKey))
	case len(sub.TraceID) > maxTrace:
		return nil, false, errField("trace_id", fmt.Sprintf("longer than %d bytes", maxTrace))
	}
	tenant := p.tenant
	if sub.Tenant != "" {
		tenant = sub.Tenant
	}
	prio := e.defaultPriority()
	if sub.Priority != "" {
		pr, err := executor.ParsePriority(sub.Priority)
		if err != nil {
			return nil, false, errField("priority", fmt.Sprintf("%q: want low, normal, high or critical", sub.Priority))
		}
		prio = pr.String()
	}
	input := []byte(sub.Input)
	if string(input) == "null" {
		input = nil
	}
	now := time.Now()
	r = &stepRow{ID: newStepID(now), Tenant: tenant, Block: e.name, State: stateQueued, Priority: prio, Pool: e.pool,
		Input: input, MayRerun: sub.MayRerun, IdempotencyKey: sub.IdempotencyKey, SubmittedBy: p.identity,
		TraceID: sub.TraceID, Created: now.UTC().Truncate(time.Millisecond)}
	var in *approval.Input
	if e.name == approval.Name {
		var err error
		if in, err = approval.ParseInput(input); err != nil {
			var ie *approval.InputError
			if errors.As(err, &ie) {
				return nil, false, errField(ie.Field, ie.Problem)
			}
			return nil, false, errField("input", err.Error())
		}
		r.State = stateWaiting
		r.Approval = &approvalRow{StepID: r.ID, Tenant: tenant, Prompt: in.Prompt, Approvers: in.Approvers,
			Deadline: r.Created.Add(in.Timeout()), State: approvalPending}
	}
	if err := s.st.insert(ctx, r); err != nil {
		if errors.Is(err, errDuplicate) {
			prev, err := s.st.byIdempotencyKey(ctx, tenant, sub.IdempotencyKey)
			if err != nil {
				return nil, false, errInternal(err)
			}
			return prev, true, nil
		}
		return nil, false, errInternal(err)
	}
	s.metrics.submitted.WithLabelValues(e.name).Inc()
	if in != nil {
		s.park(r)
	} else if !s.launch(s.runCtx, r, e) {
		// Stored as queued: it runs at the next start.
		return nil, false, errUnavailable("the server is shutting down; the step is stored and runs at the next start")
	}
	return r, false, nil
}

// visible reports whether p may see r.
func (p principal) visible(r *stepRow) bool { return p.operator || r.Tenant == p.tenant }

// lookup returns the step id if p may see it.
func (s *Server) lookup(ctx context.Context, p principal, id string) (*stepRow, *apiError) {
	r, err := s.st.get(ctx, id)
	if errors.Is(err, errNoStep) || (err == nil && !p.visible(r)) {
		return nil, &apiError{Status: http.StatusNotFound, Code: "not_found", Field: "id", Message: fmt.Sprintf("no step %q", id)}
	}
	if err != nil {
		return nil, errInternal(err)
	}
	return r, nil
}

// await waits up to d for step id to end, or for ctx or shutdown.
func (s *Server) await(ctx context.Context, id string, d time.Duration) {
	f := s.flightOf(id)
	if f == nil || d <= 0 {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-f.done:
	case <-t.C:
	case <-ctx.Done():
	case <-s.draining:
	}
}

// cancel cancels step id: a running or queued step through the executor,
// a pending approval by withdrawing it.
func (s *Server) cancel(ctx context.Context, p principal, id string) (*stepRow, *apiError) {
	r, aerr := s.lookup(ctx, p, id)
	if aerr != nil {
		return nil, aerr
	}
	if r.final() {
		return nil, &apiError{Status: http.StatusConflict, Code: "conflict", Field: "id",
			Message: fmt.Sprintf("step %s already ended as %s", id, r.State)}
	}
	f := s.flightOf(id)
	if r.State == stateWaiting {
		res := approval.Withdrawn(id, "cancelled by "+p.identity, time.Since(r.Created))
		if err := s.st.finish(ctx, res, time.Now(), approvalWithdrawn); err != nil {
			if errors.Is(err, errNotInState) {
				return s.lookup(ctx, p, id) // decided or expired meanwhile
			}
			return nil, errInternal(err)
		}
		s.metrics.decisions.WithLabelValues(approvalWithdrawn).Inc()
		s.metrics.finished.WithLabelValues(approval.Name, string(res.Status)).Inc()
		if f != nil {
			if f.timer != nil {
				f.timer.Stop()
			}
			s.land(id, f)
		}
		return s.lookup(ctx, p, id)
	}
	if f == nil || f.ticket == nil {
		return nil, errUnavailable("the step is not running here")
	}
	f.userCancel.Store(true)
	f.ticket.Cancel()
	s.await(ctx, id, 10*time.Second)
	return s.lookup(ctx, p, id)
}

// decide records an approver's decision and turns it into the step's
// result through the executor.
func (s *Server) decide(ctx context.Context, p principal, id string, approved bool, comment string) (*stepRow, *apiError) {
	r, aerr := s.lookup(ctx, p, id)
	if aerr != nil {
		return nil, aerr
	}
	a := r.Approval
	switch {
	case a == nil:
		return nil, &apiError{Status: http.StatusConflict, Code: "conflict", Field: "id", Message: fmt.Sprintf("step %s is a %s step, not %s", id, r.Block, approval.Name)}
	case r.Tenant != p.tenant:
		return nil, &apiError{Status: http.StatusForbidden, Code: "forbidden", Field: "approver",
			Message: fmt.Sprintf("%q acts for tenant %q and may not decide tenant %q's approvals", p.identity, p.tenant, r.Tenant)}
	case a.State != approvalPending:
		return nil, &apiError{Status: http.StatusConflict, Code: "conflict", Field: "id", Message: fmt.Sprintf("approval %s is already %s", id, a.State)}
	case !(&approval.Input{Approvers: a.Approvers}).Allows(p.identity):
		return nil, &apiError{Status: http.StatusForbidden, Code: "forbidden", Field: "approver",
			Message: fmt.Sprintf("%q is not one of this step's approvers", p.identity)}
	case len(comment) > approval.MaxComment || !utf8.ValidString(comment):
		return nil, errField("comment", fmt.Sprintf("longer than %d bytes or not UTF-8", approval.MaxComment))
	}
	if s.isDraining() {
		return nil, errUnavailable("the server is shutting down; the approval stays pending")
	}
	state := approvalDenied
	if approved {
		state = approvalApproved
	}
	now := time.Now().UTC().Truncate(time.Millisecond)
	if err := s.st.decide(ctx, id, state, p.identity, comment, now); err != nil {
		if errors.Is(err, errNotInState) {
			cur, _ := s.lookup(ctx, p, id)
			msg := "decided, expired or withdrawn meanwhile"
			if cur != nil && cur.Approval != nil {
				msg = "already " + cur.Approval.State
			}
			return nil, &apiError{Status: http.StatusConflict, Code: "conflict", Field: "id", Message: fmt.Sprintf("approval %s is %s", id, msg)}
		}
		return nil, errInternal(err)
	}
	s.metrics.decisions.WithLabelValues(state).Inc()
	if f := s.flightOf(id); f != nil && f.timer != nil {
		f.timer.Stop()
	}
	a.State, a.Approver, a.Comment, a.Decided = state, p.identity, comment, now
	r.State = stateQueued
	s.launch(s.decisionContext(a), r, s.cat[r.Block])
	s.await(ctx, id, 10*time.Second)
	return s.lookup(ctx, p, id)
}
