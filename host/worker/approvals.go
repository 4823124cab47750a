package worker

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/blockhost/blockhost/abi"
	"github.com/blockhost/blockhost/host"
	"github.com/blockhost/blockhost/plugins/approval"
)

// The human.approval block on the worker (docs/worker.md, "Approvals").
// An assignment of it is parked: its approval is stored in the
// BucketApprovals key-value bucket and the assignment acknowledged, so the
// step holds no slot, no executor worker, no instance and no goroutine
// while it waits — only a timer for its deadline, on every worker. A
// decision is a request on SubjectDecide + "." + the approval id; the
// deadline's timer expires it; a cancel request withdraws it. Each ends it
// once, by a compare-and-set on its record, and whoever ends it publishes
// the result and then deletes the record.
const (
	// BucketApprovals is the JetStream key-value bucket of approvals:
	// one record per approval, pending until decided, expired or
	// withdrawn, deleted once its result is stored.
	BucketApprovals = "BLOCKHOST_APPROVALS"
	// SubjectDecide is the prefix of the decision subjects: a Decision
	// on the approval with id ID is a request on SubjectDecide.ID,
	// answered with a DecisionReply.
	SubjectDecide = "caf.exec.approval.v1.decide"
	// SubjectApprovalRequested carries an ApprovalRequest each time a
	// worker parks an approval, for whatever tells the approvers.
	SubjectApprovalRequested = "caf.exec.approval.v1.requested"
	// approvalQueue is the queue group of the workers' decision
	// subscriptions: one worker answers each decision.
	approvalQueue = "blockhost-approvals"
)

// DecideSubject is the subject on which the approval with id approvalID
// is decided.
func DecideSubject(approvalID string) string { return SubjectDecide + "." + approvalID }

// safeID is what may be both a subject token and a bucket key.
var safeID = regexp.MustCompile(`^[-/_=a-zA-Z0-9]+$`)

// ApprovalID is the id of the approval an assignment parks: its
// assignment id when that is letters, digits and -/_= only (a UUID is),
// so it can be a subject token and a key; else "sha256-" and the first 40
// hex digits of the id's SHA-256.
func ApprovalID(assignmentID string) string {
	if safeID.MatchString(assignmentID) {
		return assignmentID
	}
	sum := sha256.Sum256([]byte(assignmentID))
	return "sha256-" + hex.EncodeToString(sum[:20])
}

// Decision is the body of a decision request on DecideSubject.
type Decision struct {
	// Approved is the decision; required.
	Approved *bool `json:"approved"`
	// Approver must be one of the approvers the step's input names.
	// NATS does not tie it to the publisher: see docs/worker.md for the
	// subject permissions that make it trustworthy.
	Approver string `json:"approver"`
	// Comment is optional, at most approval.MaxComment bytes.
	Comment string `json:"comment,omitempty"`
}

// DecisionReply is a worker's answer to a decision request.
type DecisionReply struct {
	ApprovalID string `json:"approval_id"`
	// State is the approval's state after the request: approved or
	// denied when this decision was taken, else its state as it was.
	State string `json:"state,omitempty"`
	// Error says why the decision was not taken.
	Error *DecisionError `json:"error,omitempty"`
}

// DecisionError says why a decision was refused. Code is one of
// invalid_decision, not_found, forbidden, conflict and unavailable.
type DecisionError struct {
	Code    string `json:"code"`
	Field   string `json:"field,omitempty"`
	Message string `json:"message"`
}

// The codes of a DecisionError.
const (
	DecisionInvalid     = "invalid_decision"
	DecisionNotFound    = "not_found"
	DecisionForbidden   = "forbidden"
	DecisionConflict    = "conflict"
	DecisionUnavailable = "unavailable"
)

// ApprovalRequest is what a worker publishes on SubjectApprovalRequested
// when it parks an approval.
type ApprovalRequest struct {
	ApprovalID   string    `json:"approval_id"`
	AssignmentID string    `json:"assignment_id"`
	TenantID     string    `json:"tenant_id"`
	Prompt       string    `json:"prompt"`
	Approvers    []string  `json:"approvers"`
	Deadline     time.Time `json:"deadline"`
	// Subject is where the decision goes.
	Subject string `json:"subject"`
}

// Approval states, as stored and as replied.
const (
	approvalPending   = approval.StatePending
	approvalApproved  = approval.StateApproved
	approvalDenied    = approval.StateDenied
	approvalExpired   = approval.StateExpired
	approvalWithdrawn = approval.StateWithdrawn
)

// approvalRecord is one approval in BucketApprovals.
type approvalRecord struct {
	Assignment *Assignment `json:"assignment"`
	Prompt     string      `json:"prompt"`
	Approvers  []string    `json:"approvers"`
	TimeoutMS  int64       `json:"timeout_ms"`
	AcceptedAt int64       `json:"accepted_at"` // Unix ms
	Deadline   int64       `json:"deadline"`    // Unix ms
	WorkerID   string      `json:"worker_id"`   // who parked it
	State      string      `json:"state"`
	Approver   string      `json:"approver,omitempty"`
	Comment    string      `json:"comment,omitempty"`
	DecidedAt  int64       `json:"decided_at,omitempty"` // Unix ms
	// Reason is why it was withdrawn.
	Reason string `json:"reason,omitempty"`
}

func (r *approvalRecord) input() *approval.Input {
	return &approval.Input{Prompt: r.Prompt, TimeoutMS: r.TimeoutMS, Approvers: r.Approvers}
}

// approvals is a worker's part in hosting human.approval: the bucket, the
// decision subscription, and a deadline timer per pending approval.
type approvals struct {
	w       *Worker
	kv      jetstream.KeyValue
	sub     *nats.Subscription
	watcher jetstream.KeyWatcher

	mu     sync.Mutex
	closed bool
	timers map[string]*time.Timer // approval id → its deadline
	ops    sync.WaitGroup         // timer callbacks and decisions under way
}

// approvalBucket returns the configuration of BucketApprovals.
func (s Streams) approvalBucket() jetstream.KeyValueConfig {
	s = s.or(DefaultStreams)
	return jetstream.KeyValueConfig{Bucket: BucketApprovals, Storage: jetstream.FileStorage, Replicas: s.Replicas,
		History: 1, Description: "blockhost: human.approval steps waiting for a decision"}
}

// startApprovals opens the bucket, subscribes to decisions and watches
// the bucket: every pending approval gets a timer for its deadline, and
// one left decided but unpublished by a worker that stopped is published.
func (w *Worker) startApprovals(ctx context.Context) error {
	kv, err := w.js.CreateKeyValue(ctx, w.cfg.streams.approvalBucket())
	if errors.Is(err, jetstream.ErrBucketExists) {
		kv, err = w.js.KeyValue(ctx, BucketApprovals)
	}
	if err != nil {
		return fmt.Errorf("worker: approvals bucket %s: %w", BucketApprovals, err)
	}
	ap := &approvals{w: w, kv: kv, timers: map[string]*time.Timer{}}
	// The watcher lives as long as the worker, not as long as Start's ctx.
	if ap.watcher, err = kv.WatchAll(context.WithoutCancel(ctx)); err != nil {
		return fmt.Errorf("worker: watching %s: %w", BucketApprovals, err)
	}
	if ap.sub, err = w.nc.QueueSubscribe(SubjectDecide+".*", approvalQueue, ap.onDecision); err != nil {
		_ = ap.watcher.Stop()
		return fmt.Errorf("worker: decision subscription: %w", err)
	}
	w.ap.Store(ap)
	w.loops.Add(1)
	go ap.watch()
	return nil
}

// watch follows the bucket until the worker stops.
func (ap *approvals) watch() {
	defer ap.w.loops.Done()
	initial := true
	for {
		select {
		case <-ap.w.stopLoops:
			return
		case e, ok := <-ap.watcher.Updates():
			if !ok {
				return
			}
			if e == nil { // the end of the values present at the start
				initial = false
				continue
			}
			ap.seen(e, initial)
		}
	}
}

// seen handles one update of the bucket.
func (ap *approvals) seen(e jetstream.KeyValueEntry, initial bool) {
	id := e.Key()
	if e.Operation() != jetstream.KeyValuePut {
		ap.unschedule(id)
		return
	}
	var rec approvalRecord
	if err := json.Unmarshal(e.Value(), &rec); err != nil || rec.Assignment == nil {
		ap.w.logger.Error("unreadable approval record; leaving it", "approval_id", id, "error", err)
		return
	}
	switch {
	case rec.State == approvalPending:
		ap.schedule(id, time.UnixMilli(rec.Deadline))
	case initial:
		// Ended before a worker stopped, its result maybe unpublished:
		// publish it (a duplicate is dropped by the results stream).
		ap.unschedule(id)
		if ap.enter() {
			ap.finish(id, &rec, e.Revision())
			ap.ops.Done()
		}
	default:
		ap.unschedule(id)
	}
}

// enter counts an operation, unless the approvals are closed.
func (ap *approvals) enter() bool {
	ap.mu.Lock()
	defer ap.mu.Unlock()
	if ap.closed {
		return false
	}
	ap.ops.Add(1)
	return true
}

func (ap *approvals) schedule(id string, deadline time.Time) {
	ap.mu.Lock()
	defer ap.mu.Unlock()
	if ap.closed {
		return
	}
	if t := ap.timers[id]; t != nil {
		t.Stop()
	}
	ap.timers[id] = time.AfterFunc(time.Until(deadline), func() { ap.expire(id) })
}

func (ap *approvals) unschedule(id string) {
	ap.mu.Lock()
	defer ap.mu.Unlock()
	if t := ap.timers[id]; t != nil {
		t.Stop()
		delete(ap.timers, id)
	}
}

func (ap *approvals) pending() int {
	ap.mu.Lock()
	defer ap.mu.Unlock()
	return len(ap.timers)
}

// close stops taking decisions and firing deadlines, and waits for those
// under way. Pending approvals stay in the bucket.
func (ap *approvals) close() {
	if ap == nil {
		return
	}
	_ = ap.sub.Unsubscribe()
	_ = ap.watcher.Stop()
	ap.mu.Lock()
	ap.closed = true
	for id, t := range ap.timers {
		t.Stop()
		delete(ap.timers, id)
	}
	ap.mu.Unlock()
	ap.ops.Wait()
}

// opContext bounds one operation on the bucket.
func (ap *approvals) opContext() (context.Context, context.CancelFunc) {
	return context.WithTimeout(ap.w.pubCtx, 10*time.Second)
}

// get reads an approval's record.
func (ap *approvals) get(ctx context.Context, id string) (*approvalRecord, uint64, error) {
	e, err := ap.kv.Get(ctx, id)
	if err != nil {
		return nil, 0, err
	}
	var rec approvalRecord
	if err := json.Unmarshal(e.Value(), &rec); err != nil || rec.Assignment == nil {
		return nil, 0, fmt.Errorf("approval %s: unreadable record: %v", id, err)
	}
	return &rec, e.Revision(), nil
}

// end moves a pending approval to its final state with a compare-and-set
// on rev, so that of a decision, the deadline and a cancellation exactly
// one wins; the winner publishes the result. It returns the new revision
// or the error of the update (jetstream.ErrKeyExists when another won).
func (ap *approvals) end(ctx context.Context, id string, rec *approvalRecord, rev uint64) (uint64, error) {
	b, _ := json.Marshal(rec)
	rev, err := ap.kv.Update(ctx, id, b, rev)
	if err != nil {
		return 0, err
	}
	ap.unschedule(id)
	ap.w.m.approvals.WithLabelValues(rec.State).Inc()
	return rev, nil
}

// expire ends an approval whose deadline passed.
func (ap *approvals) expire(id string) {
	if !ap.enter() {
		return // stopping: the next worker to start sees it pending and past due
	}
	defer ap.ops.Done()
	ctx, cancel := ap.opContext()
	defer cancel()
	rec, rev, err := ap.get(ctx, id)
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound):
		return
	case err != nil:
		ap.w.logger.Warn("cannot read an approval at its deadline; trying again", "approval_id", id, "error", err)
		ap.schedule(id, time.Now().Add(time.Second))
		return
	case rec.State != approvalPending:
		return
	case time.Now().Before(time.UnixMilli(rec.Deadline)):
		ap.schedule(id, time.UnixMilli(rec.Deadline))
		return
	}
	rec.State, rec.DecidedAt = approvalExpired, time.Now().UnixMilli()
	if rev, err = ap.end(ctx, id, rec, rev); err != nil {
		ap.w.logger.Debug("approval ended elsewhere before its deadline here", "approval_id", id, "error", err)
		return
	}
	ap.finish(id, rec, rev)
}

// withdraw ends a pending approval whose assignment was cancelled.
func (ap *approvals) withdraw(assignmentID, reason string) {
	if ap == nil || !ap.enter() {
		return
	}
	defer ap.ops.Done()
	id := ApprovalID(assignmentID)
	ctx, cancel := ap.opContext()
	defer cancel()
	rec, rev, err := ap.get(ctx, id)
	if err != nil || rec.State != approvalPending || rec.Assignment.AssignmentID != assignmentID {
		return
	}
	if reason == "" {
		reason = "cancelled"
	}
	rec.State, rec.Reason, rec.DecidedAt = approvalWithdrawn, reason, time.Now().UnixMilli()
	if rev, err = ap.end(ctx, id, rec, rev); err != nil {
		return
	}
	ap.w.logger.Info("approval withdrawn", "approval_id", id, "reason", reason)
	ap.finish(id, rec, rev)
}

// onDecision takes one decision request.
func (ap *approvals) onDecision(m *nats.Msg) {
	id := strings.TrimPrefix(m.Subject, SubjectDecide+".")
	reply := func(r DecisionReply) {
		r.ApprovalID = id
		if m.Reply == "" {
			return
		}
		b, _ := json.Marshal(r)
		_ = m.Respond(b)
	}
	refuse := func(code, field, format string, args ...any) {
		reply(DecisionReply{Error: &DecisionError{Code: code, Field: field, Message: fmt.Sprintf(format, args...)}})
	}
	if !ap.enter() {
		refuse(DecisionUnavailable, "", "the worker is stopping; send the decision again")
		return
	}
	defer ap.ops.Done()
	var d Decision
	dec := json.NewDecoder(strings.NewReader(string(m.Data)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&d); err != nil {
		refuse(DecisionInvalid, "", "not a decision {\"approved\", \"approver\", \"comment\"}: %v", err)
		return
	}
	switch {
	case d.Approved == nil:
		refuse(DecisionInvalid, "approved", "missing: true or false")
		return
	case d.Approver == "":
		refuse(DecisionInvalid, "approver", "missing: who decides")
		return
	case len(d.Comment) > approval.MaxComment || !utf8.ValidString(d.Comment):
		refuse(DecisionInvalid, "comment", "longer than %d bytes or not UTF-8", approval.MaxComment)
		return
	}
	ctx, cancel := ap.opContext()
	defer cancel()
	rec, rev, err := ap.get(ctx, id)
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound):
		refuse(DecisionNotFound, "", "no approval %q is pending (decided, expired, withdrawn, or never asked)", id)
		return
	case err != nil:
		refuse(DecisionUnavailable, "", "cannot read the approval: %v", err)
		return
	case rec.State != approvalPending:
		reply(DecisionReply{State: rec.State, Error: &DecisionError{Code: DecisionConflict, Message: "the approval is already " + rec.State}})
		return
	case !rec.input().Allows(d.Approver):
		ap.w.logger.Warn("decision refused: not an approver", "approval_id", id, "approver", d.Approver)
		refuse(DecisionForbidden, "approver", "%q is not one of this step's approvers", d.Approver)
		return
	}
	rec.State = approvalDenied
	if *d.Approved {
		rec.State = approvalApproved
	}
	rec.Approver, rec.Comment, rec.DecidedAt = d.Approver, d.Comment, time.Now().UnixMilli()
	if rev, err = ap.end(ctx, id, rec, rev); err != nil {
		cur, _, gerr := ap.get(ctx, id)
		if gerr == nil {
			reply(DecisionReply{State: cur.State, Error: &DecisionError{Code: DecisionConflict, Message: "the approval is already " + cur.State}})
		} else {
			refuse(DecisionConflict, "", "the approval ended meanwhile")
		}
		return
	}
	ap.w.logger.Info("approval decided", "approval_id", id, "state", rec.State, "approver", d.Approver)
	// The decision is stored: it stands even if publishing the result
	// fails now (a worker that starts later publishes it).
	ap.finish(id, rec, rev)
	reply(DecisionReply{State: rec.State})
}

// finish publishes the result of an ended approval and deletes its record.
func (ap *approvals) finish(id string, rec *approvalRecord, rev uint64) {
	w := ap.w
	a := rec.Assignment
	accepted := time.UnixMilli(rec.AcceptedAt)
	waited := time.UnixMilli(rec.DecidedAt).Sub(accepted)
	timeout := time.Duration(rec.TimeoutMS) * time.Millisecond
	r := newResult(a, w.cfg.id)
	switch rec.State {
	case approvalExpired:
		r.fromStep(approval.Expired(a.AssignmentID, timeout, waited), accepted, nil)
	case approvalWithdrawn:
		r.fromStep(approval.Withdrawn(a.AssignmentID, rec.Reason, waited), accepted, nil)
	default:
		// Decided: the block turns the decision into its output, under
		// the same contract as every other step.
		st, err := w.blocks.Step(a)
		if err != nil {
			r.fromStep(&abi.StepResult{StepID: a.AssignmentID, Block: approval.Name, Status: abi.StatusError,
				Error: abi.NewError(abi.CodeResourceUnavailable, abi.ClassPermanent, "human.approval is no longer configured: "+err.Error())}, accepted, nil)
			break
		}
		step := st.Request.Step
		step.ID = a.AssignmentID
		ctx := approval.WithDecision(context.WithoutCancel(w.pubCtx), approval.Decision{Approved: rec.State == approvalApproved,
			Approver: rec.Approver, Comment: rec.Comment, ApprovedAt: time.UnixMilli(rec.DecidedAt).UTC()})
		r.fromStep(st.Request.Runner.Run(ctx, step), accepted, st.Output)
	}
	body, _ := json.Marshal(r)
	if !w.publish(SubjectResult, body, a.AssignmentID) {
		return // stopping: the record stays, and the next start publishes it
	}
	ctx, cancel := ap.opContext()
	defer cancel()
	if err := ap.kv.Delete(ctx, id, jetstream.LastRevision(rev)); err != nil {
		w.logger.Warn("result published; deleting the approval record failed, so a later start publishes it again (dropped as a duplicate)",
			"approval_id", id, "error", err)
	}
}

// isApproval reports whether a step runs the built-in human.approval.
func isApproval(st Step) bool {
	nb, ok := st.Request.Runner.(*host.NativeBlock)
	return ok && nb.Name() == approval.Name
}

// park stores a human.approval assignment's approval and acknowledges the
// assignment: from then on the approval, not the assignment, holds the
// step, and no slot is used while it waits.
func (w *Worker) park(msg jetstream.Msg, a *Assignment, accepted time.Time, deliveries, seq uint64) {
	in, err := approval.ParseInput(a.Job.Input())
	if err != nil {
		var ie *approval.InputError
		field := "job"
		if errors.As(err, &ie) {
			field = "job" + strings.TrimPrefix(ie.Field, "input")
		}
		w.deadLetter(msg, a, &ValidationError{Reason: ReasonInvalidJob, Field: field, Message: err.Error()}, deliveries, seq, accepted)
		return
	}
	ap := w.approvalsOf()
	if ap == nil {
		w.publishAck(ackOf(a, w.cfg.id, AckError, "", "the approvals bucket is not open"))
		w.nak(msg, time.Second)
		return
	}
	if w.isCancelled(a.AssignmentID) {
		r := newResult(a, w.cfg.id)
		r.fromStep(approval.Withdrawn(a.AssignmentID, "cancelled before it was asked", 0), accepted, nil)
		w.answer(msg, r, seq)
		return
	}
	id := ApprovalID(a.AssignmentID)
	deadline := accepted.Add(in.Timeout())
	rec := approvalRecord{Assignment: a, Prompt: in.Prompt, Approvers: in.Approvers, TimeoutMS: in.TimeoutMS,
		AcceptedAt: accepted.UnixMilli(), Deadline: deadline.UnixMilli(), WorkerID: w.cfg.id, State: approvalPending}
	b, _ := json.Marshal(&rec)
	ctx, cancel := context.WithTimeout(w.pubCtx, 10*time.Second)
	defer cancel()
	_, err = ap.kv.Create(ctx, id, b)
	switch {
	case errors.Is(err, jetstream.ErrKeyExists):
		// Delivered again after it was parked: it is held already.
		w.logger.Debug("approval already parked", "approval_id", id)
	case err != nil:
		w.publishAck(ackOf(a, w.cfg.id, AckError, "", "cannot store the approval: "+err.Error()))
		w.logger.Warn("cannot store an approval; handing the assignment back", "assignment_id", a.AssignmentID, "error", err)
		w.nak(msg, time.Second)
		return
	default:
		w.publishAck(ackOf(a, w.cfg.id, AckAccepted, "", "waiting for a decision on "+DecideSubject(id)))
		req, _ := json.Marshal(ApprovalRequest{ApprovalID: id, AssignmentID: a.AssignmentID, TenantID: a.TenantID,
			Prompt: in.Prompt, Approvers: in.Approvers, Deadline: deadline.UTC(), Subject: DecideSubject(id)})
		if err := w.nc.Publish(SubjectApprovalRequested, req); err != nil {
			w.logger.Debug("publishing an approval request failed", "error", err)
		}
		w.logger.Info("approval parked", "approval_id", id, "assignment_id", a.AssignmentID, "deadline", deadline)
	}
	if err := msg.DoubleAck(ctx); err != nil {
		w.logger.Warn("acking a parked approval's assignment failed; its redelivery finds the approval parked", "assignment_id", a.AssignmentID, "error", err)
	}
	// A cancel that came while the approval was being stored found
	// nothing to withdraw: withdraw it now.
	if w.isCancelled(a.AssignmentID) {
		ap.withdraw(a.AssignmentID, "cancelled")
	}
}

// hostsApprovals reports whether the worker's blocks run human.approval
// as the job type of that name.
func (w *Worker) hostsApprovals() bool {
	probe := &Assignment{Version: WireVersion, AssignmentID: "probe", RequestID: "probe", TenantID: "probe",
		Job: Job{Type: approval.Name, Fields: map[string]json.RawMessage{
			"prompt": json.RawMessage(`"?"`), "timeout_ms": json.RawMessage(`1000`), "approvers": json.RawMessage(`["probe"]`)}}}
	st, err := w.blocks.Step(probe)
	return err == nil && isApproval(st)
}

// approvalsOf returns the worker's approvals, nil before Start.
func (w *Worker) approvalsOf() *approvals { return w.ap.Load() }

func (w *Worker) isCancelled(assignmentID string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	_, ok := w.cancelled[assignmentID]
	return ok
}
