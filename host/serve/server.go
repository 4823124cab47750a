package serve

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/blockhost/blockhost/abi"
	"github.com/blockhost/blockhost/host"
	"github.com/blockhost/blockhost/host/executor"
	"github.com/blockhost/blockhost/host/job"
	"github.com/blockhost/blockhost/plugins/approval"
)

// Server serves steps, approvals and the status page. It is safe for
// concurrent use.
type Server struct {
	cfg      Config
	logger   hclog.Logger
	st       *store
	svc      *job.Service // the request model: loads blocks, owns the executor
	exec     *executor.Executor
	cat      catalog
	tokens   map[[sha256.Size]byte]principal
	registry *prometheus.Registry
	metrics  *metrics
	handler  http.Handler
	// runCtx is the context every step runs under. Only executor.Close
	// ends steps at shutdown, so that each one is finished or handed back.
	runCtx context.Context

	drainOnce sync.Once
	draining  chan struct{} // closed when Shutdown begins

	mu      sync.Mutex
	closed  bool // no new goroutines, timers or steps
	flights map[string]*flight
	httpSrv *http.Server
	wg      sync.WaitGroup // every goroutine the server starts
}

// flight is a step the server holds in memory until its result is
// stored: a ticket of the executor, or a parked approval's timer.
type flight struct {
	done       chan struct{} // closed once the result is stored (or the step handed back)
	ticket     *job.Ticket
	timer      *time.Timer // the deadline of a pending approval
	userCancel atomic.Bool
}

// principal is who a request acts as.
type principal struct {
	tenant, identity string
	operator         bool
}

// local is who acts without a token under --insecure-local.
var local = principal{tenant: "local", identity: "local", operator: true}

// New opens the store, loads the catalog, and resumes what the store
// holds: pending approvals wait again with their deadlines, steps that
// never started are queued again, and a step that was running when the
// host stopped is reported as error internal_error, or run again when
// its request allowed it and its block is idempotent.
func New(ctx context.Context, cfg Config) (*Server, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	logger := cfg.logger
	if logger == nil {
		logger = hclog.NewNullLogger()
	}
	s := &Server{cfg: cfg, logger: logger.Named("serve"), flights: map[string]*flight{},
		draining: make(chan struct{}), runCtx: context.Background(), tokens: map[[sha256.Size]byte]principal{}}
	if cfg.file != nil {
		for _, t := range cfg.file.Tenants {
			for _, tok := range t.Tokens {
				s.tokens[tok.SHA256] = principal{tenant: t.Name, identity: tok.Identity, operator: tok.Operator}
			}
		}
	}
	s.registry = cfg.registry
	if s.registry == nil {
		s.registry = prometheus.NewRegistry()
		s.registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	}

	var err error
	if s.st, err = openStore(ctx, cfg.storeDir); err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			s.release(ctx)
		}
	}()
	ecfg := executor.NewConfig().WithRegisterer(s.registry)
	pools := cfg.pools()
	if _, ok := pools[approvalPool]; !ok {
		pools[approvalPool] = executor.PoolConfig{Concurrency: 2, QueueSize: 4096}
	}
	for name, p := range pools {
		ecfg = ecfg.WithPool(name, p)
	}
	jcfg := job.NewConfig().WithLogger(logger).WithCacheDir(cfg.cacheDir).WithAuditLog(cfg.audit).
		WithOverrides(job.Settings{Engine: cfg.engine, TrustedKeys: cfg.trustedKeys}).
		WithExecutorConfig(ecfg).WithPool(pools[executor.DefaultPool]).WithMaxInput(int(cfg.maxBody))
	if s.svc, err = job.New(jcfg); err != nil {
		return nil, &ConfigError{Where: "pool or engine", Problem: err.Error()}
	}
	s.exec = s.svc.Executor()
	if s.cat, err = loadCatalog(ctx, s.svc, cfg.blocks(), cfg.natives); err != nil {
		return nil, err
	}
	if s.metrics, err = newMetrics(s); err != nil {
		return nil, err
	}
	if err := s.resume(ctx); err != nil {
		return nil, err
	}
	if cfg.retention > 0 {
		s.wg.Add(1)
		go s.pruneLoop(cfg.retention)
	}
	s.handler = s.routes()
	ok = true
	return s, nil
}

// release frees what New acquired, on failure or at the end of Shutdown.
func (s *Server) release(ctx context.Context) {
	if s.exec != nil {
		_ = s.exec.Close(ctx)
	}
	s.wg.Wait()
	if s.svc != nil {
		_ = s.svc.Close(ctx)
	}
	if s.st != nil {
		_ = s.st.close()
	}
}

// Handler is the server's HTTP handler, for tests and for embedding.
func (s *Server) Handler() http.Handler { return s.handler }

// Serve serves HTTP on ln until Shutdown. Under WithInsecureLocal, ln
// must be a loopback address. It returns http.ErrServerClosed after
// Shutdown.
func (s *Server) Serve(ln net.Listener) error {
	if s.cfg.insecureLocal {
		if a, ok := ln.Addr().(*net.TCPAddr); !ok || !a.IP.IsLoopback() {
			return &ConfigError{Where: "--listen", Problem: fmt.Sprintf("%s is not a loopback address: --insecure-local serves only this machine", ln.Addr())}
		}
	}
	hs := &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       time.Minute,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          s.logger.StandardLogger(&hclog.StandardLoggerOptions{ForceLevel: hclog.Debug}),
	}
	s.mu.Lock()
	if s.closed || s.httpSrv != nil {
		s.mu.Unlock()
		return ErrClosed
	}
	s.httpSrv = hs
	s.mu.Unlock()
	return hs.Serve(ln)
}

// Shutdown stops the server gracefully: it stops accepting requests,
// lets running steps finish until ctx ends and then cancels them, and
// hands back what did not finish — a step that never started is queued
// again at the next start; one that started is recorded as error
// internal_error, or queued again when its request allowed it and its
// block is idempotent. Pending approvals stay pending in the store.
func (s *Server) Shutdown(ctx context.Context) error {
	s.drainOnce.Do(func() { close(s.draining) })
	s.mu.Lock()
	hs := s.httpSrv
	s.mu.Unlock()
	var errs []error
	if hs != nil {
		if err := hs.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("http: %w", err))
		}
	}
	s.mu.Lock()
	s.closed = true
	for _, f := range s.flights {
		if f.timer != nil {
			f.timer.Stop()
		}
	}
	s.mu.Unlock()
	if err := s.exec.Close(ctx); err != nil {
		s.logger.Warn("drain timeout passed; cancelled the steps still running", "error", err)
	}
	s.release(context.WithoutCancel(ctx))
	return errors.Join(errs...)
}

// pruneBatch bounds one transaction of pruning, so that it never holds
// the store's one writer long.
const pruneBatch = 1000

// pruneLoop deletes finished steps older than retention, at start and
// then every tenth of retention (at most hourly), until Shutdown begins.
func (s *Server) pruneLoop(retention time.Duration) {
	defer s.wg.Done()
	every := max(min(retention/10, time.Hour), 50*time.Millisecond)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		for {
			n, err := s.st.prune(context.Background(), time.Now().Add(-retention), pruneBatch)
			if err != nil {
				s.logger.Warn("pruning finished steps failed; trying again later", "error", err)
				break
			}
			s.metrics.pruned.Add(float64(n))
			if n > 0 {
				s.logger.Debug("pruned finished steps", "count", n, "retention", retention)
			}
			if n < pruneBatch || s.isDraining() {
				break
			}
		}
		select {
		case <-s.draining:
			return
		case <-t.C:
		}
	}
}

// enter counts a new server goroutine, unless the server is closed. The
// count is taken under mu so that Shutdown's Wait never races an Add.
func (s *Server) enter() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.wg.Add(1)
	return true
}

func (s *Server) isDraining() bool {
	select {
	case <-s.draining:
		return true
	default:
	}
	return false
}

// newStepID returns 32 hex digits whose first 12 are the time in
// milliseconds, so that IDs sort by submission, across restarts too.
func newStepID(now time.Time) string {
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], uint64(now.UnixMilli())<<16)
	_, _ = rand.Read(b[6:])
	return hex.EncodeToString(b[:])
}

// tracked wraps a block's runner to record, durably and before the block
// runs, that an attempt started.
type tracked struct {
	host.Runner
	s *Server
}

func (t tracked) Run(ctx context.Context, step host.Step) *abi.StepResult {
	if err := t.s.st.markRunning(context.WithoutCancel(ctx), step.ID, time.Now()); err != nil {
		t.s.logger.Error("cannot record that a step starts; not running it", "step_id", step.ID, "error", err)
		return &abi.StepResult{StepID: step.ID, Block: t.Name(), Status: abi.StatusError,
			Error: abi.NewError(abi.CodeInternalError, abi.ClassRetryable, "the host could not record the step's start: "+err.Error())}
	}
	return t.Runner.Run(ctx, step)
}

// launch hands a stored step to the executor and starts the goroutine
// that stores its result. It reports false when the server is closed.
func (s *Server) launch(ctx context.Context, r *stepRow, e *entry) bool {
	xr, rerr := s.resolve(ctx, r, e)
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return false
	}
	f := s.flights[r.ID]
	if f == nil {
		f = &flight{done: make(chan struct{})}
		s.flights[r.ID] = f
	}
	f.timer = nil
	if rerr == nil {
		f.ticket = s.svc.Start(ctx, xr)
	}
	s.wg.Add(1)
	s.mu.Unlock()
	go func() {
		defer s.wg.Done()
		if rerr != nil {
			// The catalog loaded the block at start, so this is a bug;
			// it is the step's error rather than a step left unfinished.
			s.settle(r, e, f, job.ErrorResult(r.ID, r.Block, rerr))
			return
		}
		s.settle(r, e, f, f.ticket.Result())
	}()
	return true
}

// settle stores a step's result, or hands the step back when shutdown
// ended it, and releases whoever waits for it.
func (s *Server) settle(r *stepRow, e *entry, f *flight, res *abi.StepResult) {
	ctx := context.Background()
	defer s.land(r.ID, f)
	if res.Status == abi.StatusCancelled && s.isDraining() && !f.userCancel.Load() {
		s.handBack(ctx, r, e, res.Attempts > 0)
		return
	}
	if err := s.st.finish(ctx, res, time.Now(), ""); err != nil && !errors.Is(err, errNotInState) {
		s.logger.Error("cannot store a step's result", "step_id", r.ID, "status", res.Status, "error", err)
	}
	s.metrics.finished.WithLabelValues(r.Block, string(res.Status)).Inc()
}

// handBack deals with a step that shutdown or a crash interrupted: one
// that never started, or may run again, is queued for the next start;
// any other is over, as internal_error.
func (s *Server) handBack(ctx context.Context, r *stepRow, e *entry, started bool) {
	if !started || (r.MayRerun && e.idempotent) {
		if err := s.st.requeue(ctx, r.ID); err != nil && !errors.Is(err, errNotInState) {
			s.logger.Error("cannot hand a step back", "step_id", r.ID, "error", err)
		}
		s.logger.Info("step handed back; it runs again at the next start", "step_id", r.ID, "block", r.Block, "started", started)
		return
	}
	res := &abi.StepResult{StepID: r.ID, Block: r.Block, Status: abi.StatusError,
		Error: abi.NewError(abi.CodeInternalError, abi.ClassRetryable, "host stopped during the step")}
	if err := s.st.finish(ctx, res, time.Now(), ""); err != nil && !errors.Is(err, errNotInState) {
		s.logger.Error("cannot store a step's result", "step_id", r.ID, "error", err)
	}
}

// land forgets a flight whose result is stored and wakes its waiters.
func (s *Server) land(id string, f *flight) {
	s.mu.Lock()
	if s.flights[id] == f {
		delete(s.flights, id)
	}
	s.mu.Unlock()
	close(f.done)
}

func (s *Server) flightOf(id string) *flight {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.flights[id]
}

// resume picks up what the store holds unfinished after a start.
func (s *Server) resume(ctx context.Context) error {
	rows, err := s.st.unfinished(ctx)
	if err != nil {
		return &StoreError{Path: s.cfg.storeDir, Err: err}
	}
	for _, r := range rows {
		e := s.cat[r.Block]
		if e == nil {
			res := &abi.StepResult{StepID: r.ID, Block: r.Block, Status: abi.StatusError,
				Error: abi.NewError(abi.CodeResourceUnavailable, abi.ClassPermanent, fmt.Sprintf("block %q is no longer served", r.Block))}
			approvalState := ""
			if r.State == stateWaiting {
				approvalState = approvalWithdrawn
			}
			if err := s.st.finish(ctx, res, time.Now(), approvalState); err != nil {
				return &StoreError{Path: s.cfg.storeDir, Err: err}
			}
			continue
		}
		switch {
		case r.State == stateWaiting:
			s.park(r)
		case r.Approval != nil:
			// Decided before the stop: turning the decision into the
			// result is pure, so it is simply done again.
			s.launch(s.decisionContext(r.Approval), r, e)
		case r.State == stateQueued:
			s.launch(s.runCtx, r, e)
		case r.MayRerun && e.idempotent:
			s.logger.Info("running again a step that was running when the host stopped", "step_id", r.ID, "block", r.Block)
			if err := s.st.requeue(ctx, r.ID); err != nil {
				return &StoreError{Path: s.cfg.storeDir, Err: err}
			}
			s.launch(s.runCtx, r, e)
		default:
			s.handBack(ctx, r, e, true)
		}
	}
	if n := len(rows); n > 0 {
		s.logger.Info("resumed unfinished steps from the store", "count", n)
	}
	return nil
}

// decisionContext carries a stored decision for the approval block.
func (s *Server) decisionContext(a *approvalRow) context.Context {
	return approval.WithDecision(s.runCtx, approval.Decision{
		Approved: a.State == approvalApproved, Approver: a.Approver, Comment: a.Comment, ApprovedAt: a.Decided,
	})
}

// park holds a pending approval: a timer for its deadline and nothing
// else — no goroutine, no executor worker, no instance.
func (s *Server) park(r *stepRow) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	f := &flight{done: make(chan struct{})}
	s.flights[r.ID] = f
	timeout := r.Approval.Deadline.Sub(r.Created)
	f.timer = time.AfterFunc(time.Until(r.Approval.Deadline), func() { s.expire(r.ID, f, timeout, r.Created) })
}

// expire ends an approval nobody decided in time.
func (s *Server) expire(id string, f *flight, timeout time.Duration, created time.Time) {
	if !s.enter() {
		return // shutting down: the approval stays pending and expires after the restart
	}
	defer s.wg.Done()
	res := approval.Expired(id, timeout, time.Since(created))
	if err := s.st.finish(context.Background(), res, time.Now(), approvalExpired); err != nil {
		if !errors.Is(err, errNotInState) {
			s.logger.Error("cannot store an expired approval", "step_id", id, "error", err)
		}
		return
	}
	s.metrics.decisions.WithLabelValues(approvalExpired).Inc()
	s.metrics.finished.WithLabelValues(approval.Name, string(res.Status)).Inc()
	s.land(id, f)
}
