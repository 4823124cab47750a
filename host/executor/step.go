package executor

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/blockhost/blockhost/abi"
	"github.com/blockhost/blockhost/host"
	"github.com/blockhost/blockhost/host/capability"
)

// step is one accepted request on its way to a result. Its fields are
// owned by its goroutine, except those guarded by the pool's lock (qs,
// granted, link, enqueued) and by mu (the attempt in progress, which the
// abandon timer reads).
type step struct {
	e      *Executor
	p      *pool
	req    Request
	policy RetryPolicy
	block  string
	// module is the runner's digest ("sha256:HEX") when it has one, so
	// that results the executor makes itself carry it too.
	module string
	level  int
	tenant string
	dep    string // the request's dependency
	// learnedDep is the dependency the last verdict named, if the request
	// named none.
	learnedDep string
	// budgetDep is the dependency whose retry budget counts the step:
	// the request's, else the first one learned; empty for none.
	budgetDep string
	// trace hears the attempt's capability operations (Attempt.Dependency).
	trace depTrace

	accepted     time.Time
	deadline     time.Time
	queueTimeout time.Duration

	ctx          context.Context
	cancel       context.CancelCauseFunc
	stopDeadline context.CancelFunc
	t            *Ticket

	// Guarded by p.mu.
	qs       qstate
	granted  bool // has held a worker at least once
	link     [2]links
	enqueued time.Time
	wake     chan wakeReason

	// Guarded by mu: the attempt in progress, which the abandon timer
	// reads.
	mu           sync.Mutex
	inAttempt    bool
	actx         context.Context
	abandoned    bool
	abandonTimer *time.Timer

	attempts  int
	retryHeld bool
	usage     abi.Usage
	last      *abi.StepResult
}

// newStep resolves req against the executor's configuration. A non-empty
// string says why the request is invalid.
func (e *Executor) newStep(req Request, now time.Time) (*step, string) {
	s := &step{e: e, req: req, accepted: now, wake: make(chan wakeReason, 1)}
	if s.req.Step.ID == "" {
		s.req.Step.ID = newStepID(now)
	}
	if req.Runner != nil {
		s.block = req.Runner.Name()
		if d, ok := req.Runner.(digester); ok {
			s.module = d.Digest()
		}
	}
	s.tenant, s.dep = req.TenantID, req.Dependency
	s.policy = req.Retry.Or(e.cfg.retry)
	if s.req.Step.Limits.Timeout == 0 {
		s.req.Step.Limits.Timeout = e.cfg.attemptTimeout
	}
	s.deadline = now.Add(cmp.Or(req.TotalDeadline, e.cfg.totalDeadline))
	s.queueTimeout = cmp.Or(req.QueueTimeout, e.cfg.queueTimeout)
	s.p = e.pools[cmp.Or(req.Pool, DefaultPool)]
	s.level = req.Priority.level()
	switch {
	case req.Runner == nil:
		return s, "request has no runner"
	case s.p == nil:
		return s, fmt.Sprintf("no pool named %q (pools: %v)", req.Pool, e.Pools())
	case !req.Priority.Valid():
		return s, fmt.Sprintf("invalid priority %d", int(req.Priority))
	case req.TotalDeadline < 0 || req.QueueTimeout < 0 || req.Step.Limits.Timeout < 0:
		return s, "deadlines and timeouts must not be negative"
	}
	if err := s.policy.Validate(); err != nil {
		return s, err.Error()
	}
	return s, ""
}

// digester is a runner that knows its module's digest, as *host.Block does.
type digester interface{ Digest() string }

func (s *step) poolName() string {
	if s.p == nil {
		return s.req.Pool
	}
	return s.p.name
}

func (s *step) logFields() []any {
	kv := []any{"step_id", s.req.Step.ID, "block", s.block, "pool", s.poolName()}
	for _, f := range [...]struct{ k, v string }{{"tenant_id", s.tenant}, {"trace_id", s.req.TraceID}, {"run_id", s.req.RunID}, {"flow_id", s.req.FlowID}, {"dependency", s.dep}} {
		if f.v != "" {
			kv = append(kv, f.k, f.v)
		}
	}
	return kv
}

// run is the step's goroutine: it waits for a worker, runs attempts,
// waits between them, and delivers the result.
func (s *step) run(granted bool) {
	e := s.e
	defer e.goroutineDone()
	res := s.loop(granted)
	if res != nil {
		s.finish(res)
	}
	s.stopDeadline()
	s.cancel(nil)
	if e.budgets != nil && s.budgetDep != "" {
		e.budgets.end(s.budgetDep, s.retryHeld)
	}
}

// loop returns the step's result, or nil when an abandoned attempt's
// result was delivered already.
func (s *step) loop(granted bool) *abi.StepResult {
	e, p := s.e, s.p
	if !granted {
		if res := s.waitTurn(true); res != nil {
			return res
		}
	}
	for {
		// s holds a worker here.
		if s.ctx.Err() != nil {
			p.release(s, qDone, 0, false)
			if s.attempts == 0 {
				return s.endedBeforeStart(s.ctx, "while queued")
			}
			return s.ended("queued to retry")
		}
		dep := s.dep
		if dep == "" {
			dep = s.learnedDep
		}
		var report func(Verdict, bool)
		if dep != "" && e.breakers != nil {
			done, wait, ok := e.breakers.allow(dep)
			if !ok {
				p.release(s, qDone, 0, false)
				return s.circuitOpen(dep, wait)
			}
			report = done
		}

		res, timedOut, took, abandoned := s.attempt()
		if s.retryHeld {
			e.budgets.release(s.budgetDep)
			s.retryHeld = false
		}
		counts := res.Status != abi.StatusCancelled && (res.Status != abi.StatusTimeout || timedOut)
		if abandoned {
			if report != nil {
				report(Verdict{}, false)
			}
			p.release(s, qDone, took, true)
			return nil
		}
		v := e.classifier.Classify(Attempt{Request: &s.req, N: s.attempts, Result: res, TimedOut: timedOut, Dependency: s.trace.last()})
		switch {
		case report != nil && (v.Dependency == "" || v.Dependency == dep):
			report(v, counts)
		case report != nil:
			report(Verdict{}, false)
			e.breakers.record(v.Dependency, v, counts)
		case v.Dependency != "" && e.breakers != nil:
			e.breakers.record(v.Dependency, v, counts)
		}
		if v.Dependency != "" && s.dep == "" {
			s.learnedDep = v.Dependency
			if e.budgets != nil && s.budgetDep == "" {
				// From now on the step is one of the dependency's
				// active steps, and its retries come from its budget.
				s.budgetDep = v.Dependency
				e.budgets.start(s.budgetDep)
			}
		}
		s.last = res

		if !mayRetry(res, v, &s.policy) {
			p.release(s, qDone, took, false)
			return s.final(res, "")
		}
		if s.attempts >= s.policy.MaxAttempts {
			e.metrics.retriesDenied.WithLabelValues(p.name, "attempts").Inc()
			p.release(s, qDone, took, false)
			return s.final(res, "")
		}
		if e.budgets != nil && s.budgetDep != "" {
			ok, retrying, limit := e.budgets.acquire(s.budgetDep)
			if h := e.testHookBudget; h != nil {
				h(s.budgetDep, ok, retrying, limit)
			}
			if !ok {
				e.metrics.retriesDenied.WithLabelValues(p.name, "budget").Inc()
				p.release(s, qDone, took, false)
				return s.final(res, fmt.Sprintf("not retried: the retry budget of dependency %q is spent (%d retrying)", s.budgetDep, retrying))
			}
			s.retryHeld = true
		}
		wait := e.jitter.wait(&s.policy, s.attempts, v.RetryAfter)
		if now := time.Now(); !now.Add(wait).Before(s.deadline) {
			e.metrics.retriesDenied.WithLabelValues(p.name, "deadline").Inc()
			p.release(s, qDone, took, false)
			return s.deadlineStop(res, wait)
		}
		// At info: a retry is what an operator wants to see when a step
		// takes longer than it should (issue 10).
		e.logger.Info("attempt failed; retrying after a wait", append(s.logFields(),
			"attempt", s.attempts, "of", s.policy.MaxAttempts, "wait", wait,
			"code", res.Error.Code.Name(), "error", res.Error.Message)...)
		p.release(s, qBackoff, took, false)
		timer := time.NewTimer(wait)
		select {
		case <-timer.C:
		case <-s.ctx.Done():
			timer.Stop()
			p.endBackoff(s)
			return s.ended("waiting to retry")
		}
		if !p.requeue(s) {
			if res := s.waitTurn(false); res != nil {
				return res
			}
		}
	}
}

// waitTurn waits in the queue for a worker. first marks the wait before
// the first attempt, which the queue timeout bounds. It returns nil once
// s holds a worker, else the step's result.
func (s *step) waitTurn(first bool) *abi.StepResult {
	var timeout <-chan time.Time
	if first {
		t := time.NewTimer(time.Until(s.enqueued.Add(s.queueTimeout)))
		defer t.Stop()
		timeout = t.C
	}
	waited := func() {
		s.e.metrics.queueWait.WithLabelValues(s.p.name, s.req.Priority.String()).Observe(time.Since(s.enqueued).Seconds())
	}
	select {
	case w := <-s.wake:
		waited()
		if w == wakeEvict {
			return s.evicted()
		}
		return nil
	case <-s.ctx.Done():
	case <-timeout:
	}
	switch s.p.leave(s) {
	case qRunning:
		// A worker was granted as we gave up; the caller sees the ended
		// context, or the timeout passes unnoticed and the attempt runs.
		<-s.wake
		waited()
		return nil
	case qDone:
		<-s.wake
		waited()
		return s.evicted()
	}
	waited()
	if s.ctx.Err() != nil {
		if first {
			return s.endedBeforeStart(s.ctx, "while queued")
		}
		return s.ended("queued to retry")
	}
	res := s.base()
	res.Status = abi.StatusTimeout
	res.Error = abi.NewError(abi.CodeCancelledByTimeout, abi.ClassPermanent,
		fmt.Sprintf("waited %s in pool %q's queue, its queue timeout, without starting", s.queueTimeout, s.p.name))
	return res
}

// attempt runs one attempt in the worker s holds. timedOut reports that
// the attempt's own timeout ended it while the step was live; abandoned
// that the step's result was delivered without it.
func (s *step) attempt() (res *abi.StepResult, timedOut bool, took time.Duration, abandoned bool) {
	e := s.e
	s.attempts++
	e.metrics.attempts.WithLabelValues(s.p.name, s.block).Inc()
	if s.attempts > 1 {
		e.metrics.retries.WithLabelValues(s.p.name, s.block).Inc()
	}
	actx, cancel := context.WithTimeoutCause(s.ctx, s.req.Step.Limits.Timeout, host.ErrStepTimeout)
	defer cancel()
	s.trace.reset()
	actx = capability.WithDependencyTrace(actx, &s.trace)
	s.mu.Lock()
	s.inAttempt, s.actx = true, actx
	s.mu.Unlock()
	stop := context.AfterFunc(actx, s.watch)

	start := time.Now()
	res = s.runSafely(actx)
	took = time.Since(start)

	stop()
	s.mu.Lock()
	s.inAttempt = false
	if s.abandonTimer != nil {
		s.abandonTimer.Stop()
		s.abandonTimer = nil
	}
	abandoned = s.abandoned
	s.mu.Unlock()
	e.metrics.attemptSeconds.WithLabelValues(s.p.name, s.block).Observe(took.Seconds())
	timedOut = s.ctx.Err() == nil && errors.Is(context.Cause(actx), host.ErrStepTimeout)
	if !abandoned {
		s.addUsage(res)
	}
	return res, timedOut, took, abandoned
}

// runSafely runs the attempt; a runner that panics or returns no result
// gives an internal_error result instead of taking the executor down.
func (s *step) runSafely(ctx context.Context) (res *abi.StepResult) {
	defer func() {
		if p := recover(); p != nil {
			s.e.logger.Error("runner panicked", append(s.logFields(), "panic", p)...)
			res = &abi.StepResult{StepID: s.req.Step.ID, Block: s.block, Module: s.module, Status: abi.StatusError,
				Error: abi.NewError(abi.CodeInternalError, abi.ClassPermanent, fmt.Sprintf("runner failed: %v", p))}
		}
	}()
	res = s.req.Runner.Run(ctx, s.req.Step)
	if res == nil || !res.Status.Valid() {
		return &abi.StepResult{StepID: s.req.Step.ID, Block: s.block, Module: s.module, Status: abi.StatusError,
			Error: abi.NewError(abi.CodeInternalError, abi.ClassPermanent, "runner returned no valid result")}
	}
	return res
}

// watch runs when an attempt's context ends: it gives the runner the
// abandon grace to return.
func (s *step) watch() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.inAttempt {
		s.abandonTimer = time.AfterFunc(s.e.abandonAfterDur(), s.abandon)
	}
}

// abandon delivers the step's result without the attempt that has not
// returned within the grace. The attempt keeps its worker until it does.
func (s *step) abandon() {
	s.mu.Lock()
	if !s.inAttempt || s.abandoned {
		s.mu.Unlock()
		return
	}
	s.abandoned = true
	actx := s.actx
	s.mu.Unlock()
	s.p.addAbandoned()
	s.e.metrics.abandoned.WithLabelValues(s.p.name).Inc()
	s.e.logger.Warn("attempt did not return after its step ended; abandoning it", append(s.logFields(), "grace", s.e.abandonAfterDur())...)
	res := s.base()
	res.Usage = s.usage
	setEnded(res, actx, s.req.Step.Limits.Timeout, fmt.Sprintf("attempt %d did not return within %s", s.attempts, s.e.abandonAfterDur()))
	s.finish(res)
}

func (e *Executor) abandonAfterDur() time.Duration { return e.cfg.abandonAfter }

func (s *step) addUsage(res *abi.StepResult) {
	s.usage.WallMS += res.Usage.WallMS
	s.usage.HostCalls += res.Usage.HostCalls
	s.usage.PeakMemoryBytes = max(s.usage.PeakMemoryBytes, res.Usage.PeakMemoryBytes)
	s.usage.BytesOut = res.Usage.BytesOut
}

// base returns a result carrying what the executor knows of the step.
func (s *step) base() *abi.StepResult {
	res := &abi.StepResult{StepID: s.req.Step.ID, Block: s.block, Module: s.module, Attempts: s.attempts,
		RetriesUsed: max(s.attempts-1, 0), Usage: s.usage}
	res.Usage.BytesIn = uint64(len(s.req.Step.Input))
	return res
}

// final completes the last attempt's result with the executor's counts.
func (s *step) final(res *abi.StepResult, note string) *abi.StepResult {
	b := s.base()
	res.StepID, res.Attempts, res.RetriesUsed = b.StepID, b.Attempts, b.RetriesUsed
	res.Module = cmp.Or(res.Module, b.Module)
	res.Usage = b.Usage
	if note != "" && res.Error != nil {
		res.Error = noted(res.Error, note)
	}
	if res.Status == abi.StatusTimeout && s.ctx.Err() != nil && errors.Is(context.Cause(s.ctx), ErrTotalDeadline) {
		res.Error = abi.NewError(abi.CodeCancelledByTimeout, abi.ClassPermanent,
			fmt.Sprintf("the total deadline of %s passed during attempt %d", s.totalDeadline(), s.attempts))
	}
	return res
}

func (s *step) totalDeadline() time.Duration { return s.deadline.Sub(s.accepted) }

// deadlineStop ends a step whose next wait would pass its total deadline:
// status timeout, the last error kept.
func (s *step) deadlineStop(last *abi.StepResult, wait time.Duration) *abi.StepResult {
	res := s.final(last, "")
	res.Status = abi.StatusTimeout
	res.Output, res.OutputText, res.OutputBase64 = nil, nil, nil
	res.Error = noted(last.Error, fmt.Sprintf("not retried: waiting %s for attempt %d would pass the total deadline of %s",
		wait.Round(time.Millisecond), s.attempts+1, s.totalDeadline()))
	return res
}

// circuitOpen ends a step whose dependency's circuit refused an attempt.
func (s *step) circuitOpen(dep string, wait time.Duration) *abi.StepResult {
	res := s.base()
	res.Status = abi.StatusError
	msg := fmt.Sprintf("circuit breaker for dependency %q is open; no attempt made", dep)
	if s.last != nil && s.last.Error != nil {
		msg += "; last error: " + s.last.Error.Message
	}
	res.Error = abi.NewError(abi.CodeResourceUnavailable, abi.ClassPermanent, msg).SetRetryAfter(wait)
	return res
}

// ended is the result of a step whose context ended between attempts:
// cancelled, or timeout keeping the last attempt's error.
func (s *step) ended(where string) *abi.StepResult {
	res := s.base()
	cause := context.Cause(s.ctx)
	if isTimeout(cause) {
		res.Status = abi.StatusTimeout
		if s.last != nil && s.last.Error != nil {
			res.Error = noted(s.last.Error, fmt.Sprintf("the deadline passed while %s after attempt %d", where, s.attempts))
		} else {
			res.Error = abi.NewError(abi.CodeCancelledByTimeout, abi.ClassPermanent, fmt.Sprintf("the deadline passed while %s", where))
		}
		return res
	}
	msg := fmt.Sprintf("step cancelled while %s after %d attempts: %v", where, s.attempts, cause)
	if s.last != nil && s.last.Error != nil {
		msg += "; last error: " + s.last.Error.Message
	}
	res.Status, res.Error = abi.StatusCancelled, abi.NewError(abi.CodeCancelledByUser, abi.ClassPermanent, msg)
	return res
}

// endedBeforeStart is the result of a step whose context ended before its
// first attempt.
func (s *step) endedBeforeStart(ctx context.Context, where string) *abi.StepResult {
	res := s.base()
	setEnded(res, ctx, 0, "never started: ended "+where)
	return res
}

func (s *step) evicted() *abi.StepResult {
	res := s.base()
	res.Status = abi.StatusError
	res.Error = abi.NewError(abi.CodeSystemOverload, abi.ClassRetryable,
		fmt.Sprintf("pool %q is full: refused to make room for higher-priority work; never started", s.p.name)).SetRetryAfter(s.p.hint())
	return res
}

func (p *pool) hint() time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.hintLocked()
}

// finish delivers res as the step's result, once, and accounts for it.
func (s *step) finish(res *abi.StepResult) {
	e := s.e
	res.StepID = s.req.Step.ID
	if res.Block == "" {
		res.Block = s.block
	}
	res.LatencyMS = float64(time.Since(s.accepted).Microseconds()) / 1000
	if res.Status == abi.StatusTimeout || res.Status == abi.StatusCancelled {
		res.Output, res.OutputText, res.OutputBase64 = nil, nil, nil
	}
	// The idempotency key is released before the result is published, so
	// that whoever sees the result and submits the same key again starts a
	// new step rather than getting the finished ticket back.
	if k := s.req.IdempotencyKey; k != "" {
		e.mu.Lock()
		if e.keys[k] == s.t {
			delete(e.keys, k)
		}
		e.mu.Unlock()
	}
	if !s.t.finish(res) {
		return
	}
	e.mu.Lock()
	delete(e.unfinished, s)
	e.mu.Unlock()
	pool := s.poolName()
	e.metrics.steps.WithLabelValues(pool, s.block, string(res.Status), codeLabel(res)).Inc()
	e.metrics.stepSeconds.WithLabelValues(pool, s.block, string(res.Status)).Observe(res.LatencyMS / 1000)
	if e.logger.IsDebug() {
		kv := append(s.logFields(), "status", res.Status, "attempts", res.Attempts, "latency_ms", res.LatencyMS)
		if res.Error != nil {
			kv = append(kv, "code", res.Error.Code.Name())
		}
		e.logger.Debug("step finished", kv...)
	}
}

// setEnded fills res for work ended by ctx: cancelled or timeout by the
// recorded cause.
func setEnded(res *abi.StepResult, ctx context.Context, timeout time.Duration, what string) {
	cause := context.Cause(ctx)
	if isTimeout(cause) {
		res.Status = abi.StatusTimeout
		msg := "the step's deadline passed"
		switch {
		case errors.Is(cause, host.ErrStepTimeout):
			msg = fmt.Sprintf("the attempt exceeded its %s timeout", timeout)
		case errors.Is(cause, ErrTotalDeadline):
			msg = "the step's total deadline passed"
		}
		res.Error = abi.NewError(abi.CodeCancelledByTimeout, abi.ClassPermanent, msg+"; "+what)
		return
	}
	res.Status = abi.StatusCancelled
	res.Error = abi.NewError(abi.CodeCancelledByUser, abi.ClassPermanent, fmt.Sprintf("step cancelled (%v); %s", cause, what))
}

// isTimeout reports whether a recorded cause is a deadline rather than a
// cancellation: the rule of host.Block.Run.
func isTimeout(cause error) bool {
	return errors.Is(cause, host.ErrStepTimeout) || errors.Is(cause, context.DeadlineExceeded)
}

// noted returns a copy of err with note added to its message.
func noted(err *abi.Error, note string) *abi.Error {
	c := *err
	c.Message = err.Message + " (" + note + ")"
	return &c
}

// depTrace is a step's capability.DependencyTrace: it keeps the
// dependency an attempt's capability operations last found unhealthy,
// until that dependency answers again. The lock is for a built-in
// block's abandoned attempt, whose operations may still report after the
// step has moved on.
type depTrace struct {
	mu  sync.Mutex
	dep string
}

var _ capability.DependencyTrace = (*depTrace)(nil)

// TraceDependency implements capability.DependencyTrace.
func (t *depTrace) TraceDependency(dep string, unhealthy bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	switch {
	case unhealthy:
		t.dep = dep
	case dep == t.dep:
		t.dep = ""
	}
}

func (t *depTrace) reset() {
	t.mu.Lock()
	t.dep = ""
	t.mu.Unlock()
}

func (t *depTrace) last() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.dep
}
