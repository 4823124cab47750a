package executor

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/blockhost/blockhost/abi"
)

// Executor runs steps through bounded, prioritised pools with retries,
// deadlines, circuit breakers and retry budgets. It is safe for
// concurrent use.
type Executor struct {
	cfg        Config
	logger     hclog.Logger
	pools      map[string]*pool
	poolList   []*pool
	metrics    *metrics
	breakers   *breakers // nil when disabled
	budgets    *budgets  // nil when disabled
	classifier Classifier
	jitter     *jitter

	// testHookBudget, when set, sees every retry-budget decision.
	testHookBudget func(dep string, ok bool, retrying, limit int)

	mu         sync.Mutex
	closed     bool
	unfinished map[*step]struct{}
	keys       map[string]*Ticket
	goroutines int
	drained    chan struct{} // closed when goroutines reaches 0 after Close

	// Step goroutines are reused (spawn): idle hands a step's body to a
	// runner waiting for one; stop, closed by Close, ends the waiting
	// runners; runners counts them.
	idle       chan func()
	stop       chan struct{}
	stopOnce   sync.Once
	runners    sync.WaitGroup
	runnerIdle time.Duration // runnerIdle; tests change it
}

// New builds an executor from cfg, validating it, and registers its
// metrics with cfg's registerer, if any.
func New(cfg Config) (*Executor, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	logger := cfg.logger
	if logger == nil {
		logger = hclog.NewNullLogger()
	}
	e := &Executor{
		cfg:        cfg,
		logger:     logger.Named("executor"),
		pools:      map[string]*pool{},
		classifier: cfg.classifier,
		jitter:     newJitter(cfg.rand),
		unfinished: map[*step]struct{}{},
		keys:       map[string]*Ticket{},
		idle:       make(chan func()),
		stop:       make(chan struct{}),
		runnerIdle: runnerIdle,
	}
	if e.classifier == nil {
		e.classifier = DefaultClassifier()
	}
	for _, name := range slices.Sorted(maps.Keys(cfg.pools)) {
		p := newPool(name, cfg.pools[name])
		e.pools[name] = p
		e.poolList = append(e.poolList, p)
	}
	e.metrics = newMetrics(e)
	if !cfg.breaker.Disabled {
		e.breakers = newBreakers(cfg.breaker, e.logger, e.metrics)
	}
	if !cfg.budget.Disabled {
		e.budgets = newBudgets(cfg.budget)
	}
	if cfg.registerer != nil {
		if err := e.metrics.register(cfg.registerer); err != nil {
			return nil, fmt.Errorf("executor: registering metrics: %w", err)
		}
	}
	return e, nil
}

// Ticket is the claim on one submitted step's result.
type Ticket struct {
	id     string
	done   chan struct{}
	closed atomic.Bool
	res    *abi.StepResult
	cancel context.CancelCauseFunc // nil when the step never ran
}

// StepID is the step's identifier, the one its result carries.
func (t *Ticket) StepID() string { return t.id }

// Done is closed when the result is ready.
func (t *Ticket) Done() <-chan struct{} { return t.done }

// Result waits for the step to end and returns its result. Every step
// ends: Result returns once the step is cancelled, refused or past its
// deadlines, if not sooner.
func (t *Ticket) Result() *abi.StepResult {
	<-t.done
	return t.res
}

// Wait returns the result, or ctx's error if ctx ends first; the step
// goes on either way.
func (t *Ticket) Wait(ctx context.Context) (*abi.StepResult, error) {
	select {
	case <-t.done:
		return t.res, nil
	case <-ctx.Done():
		return nil, context.Cause(ctx)
	}
}

// Cancel cancels the step wherever it is, with ErrCancelled as the cause.
// A step that already ended is not affected.
func (t *Ticket) Cancel() {
	if t.cancel != nil {
		t.cancel(ErrCancelled)
	}
}

// finish delivers res, once; it reports whether this call delivered it.
func (t *Ticket) finish(res *abi.StepResult) bool {
	if !t.closed.CompareAndSwap(false, true) {
		return false
	}
	t.res = res
	close(t.done)
	return true
}

// Run submits req and waits for its result.
func (e *Executor) Run(ctx context.Context, req Request) *abi.StepResult {
	return e.Submit(ctx, req).Result()
}

// Submit accepts req and returns at once, never blocking. The step runs
// under ctx: cancelling ctx cancels the step wherever it is, and ctx's
// values reach the runner. A step that cannot be accepted — its pool is
// full of work of its priority or higher, its tenant is at its limit, the
// request is invalid, the executor is closed — gets its result on the
// ticket at once.
func (e *Executor) Submit(ctx context.Context, req Request) *Ticket {
	now := time.Now()
	s, bad := e.newStep(req, now)
	t := &Ticket{id: s.req.Step.ID, done: make(chan struct{})}
	s.t = t
	if bad != "" {
		e.refuse(s, "invalid", abi.NewError(abi.CodeInvalidInput, abi.ClassPermanent, bad))
		return t
	}
	if ctx.Err() != nil {
		s.ctx = ctx
		s.finish(s.endedBeforeStart(ctx, "before it was submitted"))
		return t
	}
	s.ctx, s.cancel = context.WithCancelCause(ctx)
	s.ctx, s.stopDeadline = context.WithDeadlineCause(s.ctx, s.deadline, ErrTotalDeadline)
	t.cancel = s.cancel

	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		e.refuse(s, "closed", abi.NewError(abi.CodeResourceUnavailable, abi.ClassPermanent, "executor is closed"))
		return t
	}
	if k := s.req.IdempotencyKey; k != "" {
		if prev, ok := e.keys[k]; ok {
			e.mu.Unlock()
			s.stopDeadline()
			s.cancel(nil)
			return prev
		}
	}
	adm, victim, hint := s.p.admit(s, now)
	if adm == refuseFull || adm == refuseTenant {
		e.mu.Unlock()
		reason, msg := "full", fmt.Sprintf("pool %q is full (capacity %d) of work of priority %s or higher", s.p.name, s.p.capacity, s.req.Priority)
		if adm == refuseTenant {
			reason, msg = "tenant_limit", fmt.Sprintf("tenant %q already holds %d steps of pool %q, its limit", s.tenant, s.p.cfg.TenantLimit, s.p.name)
		}
		e.refuse(s, reason, abi.NewError(abi.CodeSystemOverload, abi.ClassRetryable, msg).SetRetryAfter(hint))
		return t
	}
	if k := s.req.IdempotencyKey; k != "" {
		e.keys[k] = t
	}
	e.unfinished[s] = struct{}{}
	e.goroutines++
	e.mu.Unlock()
	if victim != nil {
		e.metrics.rejections.WithLabelValues(victim.p.name, "evicted").Inc()
	}

	if e.budgets != nil && s.dep != "" {
		s.budgetDep = s.dep
		e.budgets.start(s.budgetDep)
	}
	granted := adm == admitGranted
	e.spawn(func() { s.run(granted) })
	return t
}

// refuse ends a step that was never accepted.
func (e *Executor) refuse(s *step, reason string, err *abi.Error) {
	if s.cancel != nil {
		s.stopDeadline()
		s.cancel(nil)
	}
	e.metrics.rejections.WithLabelValues(s.poolName(), reason).Inc()
	res := s.base()
	res.Status, res.Error = abi.StatusError, err
	s.finish(res)
}

// Stats returns a snapshot of the named pool's load, or false if there is
// no such pool.
func (e *Executor) Stats(pool string) (PoolStats, bool) {
	p, ok := e.pools[pool]
	if !ok {
		return PoolStats{}, false
	}
	return p.stats(), true
}

// Pools lists the executor's pools by name.
func (e *Executor) Pools() []string {
	names := make([]string, len(e.poolList))
	for i, p := range e.poolList {
		names[i] = p.name
	}
	return names
}

// Close stops accepting steps and waits for the accepted ones to end.
// If ctx ends first, it cancels them all with ErrClosed as the cause,
// waits for their results — which cancellation makes prompt — and returns
// ctx's error. Attempts that ignore cancellation are not waited for; they
// stay counted as abandoned until they return.
func (e *Executor) Close(ctx context.Context) error {
	e.mu.Lock()
	e.closed = true
	if e.drained == nil {
		e.drained = make(chan struct{})
		if e.goroutines == 0 {
			close(e.drained)
		}
	}
	drained := e.drained
	e.mu.Unlock()
	select {
	case <-drained:
		// Every step has ended: the runners are idle or about to be.
		e.stopOnce.Do(func() { close(e.stop) })
		e.runners.Wait()
		return nil
	case <-ctx.Done():
	}
	// Runners still running an attempt that ignores cancellation end
	// when it returns; they are not waited for.
	defer e.stopOnce.Do(func() { close(e.stop) })
	e.mu.Lock()
	var tickets []*Ticket
	for s := range e.unfinished {
		s.cancel(ErrClosed)
		tickets = append(tickets, s.t)
	}
	e.mu.Unlock()
	for _, t := range tickets {
		<-t.done
	}
	return context.Cause(ctx)
}

// runnerIdle is how long a step goroutine waits for the next step before
// it ends.
const runnerIdle = 5 * time.Second

// spawn runs a step's body on a goroutine of its own: an idle runner's, or
// a new one. A step goroutine's stack grows to what its block needs (a
// SQLite statement through modernc.org/sqlite needs tens of kilobytes); a
// new goroutine for every step paid that growth, copying the stack
// several times, on every step — about a quarter of a sql.query step's CPU
// (docs/benchmarks.md, "SQL"). A runner keeps its stack for the next step
// and ends after runnerIdle without one, or when the executor closes.
func (e *Executor) spawn(f func()) {
	select {
	case e.idle <- f:
	default:
		e.runners.Add(1)
		go e.runner(f)
	}
}

func (e *Executor) runner(f func()) {
	defer e.runners.Done()
	t := time.NewTimer(e.runnerIdle)
	defer t.Stop()
	for {
		f()
		f = nil // the finished step is garbage while the runner waits
		t.Reset(e.runnerIdle)
		select {
		case f = <-e.idle:
		case <-t.C:
			return
		case <-e.stop:
			return
		}
	}
}

func (e *Executor) goroutineDone() {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.goroutines--
	if e.goroutines == 0 && e.drained != nil {
		close(e.drained)
	}
}

// newStepID returns a 32-hex-digit identifier whose first 12 digits are
// the time in milliseconds, so IDs sort by submission time; the same
// form the host uses.
func newStepID(now time.Time) string {
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], uint64(now.UnixMilli())<<16)
	_, _ = rand.Read(b[6:])
	return hex.EncodeToString(b[:])
}
