package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/blockhost/blockhost/abi"
	"github.com/blockhost/blockhost/host"
	"github.com/blockhost/blockhost/host/executor"
)

// Config configures a Worker. The zero value is not valid: start from
// NewConfig. Every With method returns a new Config.
type Config struct {
	id         string
	version    string
	slots      int
	maxDeliver int
	heartbeat  time.Duration
	fetchWait  time.Duration
	streams    Streams
	logger     hclog.Logger
	registerer prometheus.Registerer
}

// NewConfig returns the defaults: an id from the host name and process
// id, slots equal to the executor's default pool capacity, at most 5
// deliveries, a heartbeat every 5 seconds, DefaultStreams.
func NewConfig() Config {
	return Config{version: "dev", maxDeliver: 5, heartbeat: 5 * time.Second, fetchWait: 500 * time.Millisecond, streams: DefaultStreams}
}

// WithID sets the worker's id, reported in acks, results and heartbeats.
func (c Config) WithID(id string) Config { c.id = id; return c }

// WithVersion sets the version reported in heartbeats.
func (c Config) WithVersion(v string) Config { c.version = v; return c }

// WithSlots sets how many assignments the worker holds at once: it
// fetches only as many as it has free slots, so the rest stay in the
// stream for a worker with room. Zero means the capacity of the
// executor's default pool.
func (c Config) WithSlots(n int) Config { c.slots = n; return c }

// WithMaxDeliver sets how many deliveries an assignment may have: one
// delivered more often (every worker that took it died) goes to the
// dead-letter subject instead of running again.
func (c Config) WithMaxDeliver(n int) Config { c.maxDeliver = n; return c }

// WithHeartbeat sets the interval of heartbeats.
func (c Config) WithHeartbeat(d time.Duration) Config { c.heartbeat = d; return c }

// WithFetchWait sets how long one fetch waits for assignments; it
// bounds how long a shutdown waits for the fetch under way.
func (c Config) WithFetchWait(d time.Duration) Config { c.fetchWait = d; return c }

// WithStreams sets the settings used to create the streams and the
// consumer; zero fields take DefaultStreams'.
func (c Config) WithStreams(s Streams) Config { c.streams = s.or(DefaultStreams); return c }

// WithLogger sets the logger; nil discards logs.
func (c Config) WithLogger(l hclog.Logger) Config { c.logger = l; return c }

// WithRegisterer registers the worker's metrics with r; nil registers
// none.
func (c Config) WithRegisterer(r prometheus.Registerer) Config { c.registerer = r; return c }

// Worker takes assignments from JetStream, runs them through an executor
// and publishes their results. See the package documentation for its
// guarantees.
type Worker struct {
	cfg    Config
	nc     *nats.Conn
	js     jetstream.JetStream
	e      *executor.Executor
	blocks Blocks
	logger hclog.Logger
	m      *metrics

	cons      jetstream.Consumer
	cancelSub jetstream.ConsumeContext
	ap        atomic.Pointer[approvals] // human.approval steps; nil until Start
	slots     chan struct{}

	started   atomic.Bool
	draining  atomic.Bool
	stopFetch chan struct{}
	stopLoops chan struct{}
	loops     sync.WaitGroup // keep-alive and heartbeat loops
	fetching  sync.WaitGroup // the fetch loop
	steps     sync.WaitGroup // one per fetched message until it is answered

	// pubCtx ends when a shutdown gives up: results not yet published
	// are abandoned and their assignments redelivered.
	pubCtx    context.Context
	pubCancel context.CancelFunc

	mu        sync.Mutex
	inflight  map[*entry]struct{}
	cancelled map[string]time.Time // assignment ids cancelled over the wire

	lastHeartbeat atomic.Int64 // Unix ns of the last heartbeat published
}

// entry is one assignment the worker holds.
type entry struct {
	msg      jetstream.Msg
	a        *Assignment
	cancel   context.CancelCauseFunc
	started  atomic.Bool // the executor began its first attempt
	handBack atomic.Bool // nak it instead of publishing a result
	touched  time.Time   // last ack or in-progress signal; guarded by Worker.mu
}

// New returns a worker that consumes through nc and runs steps on e with
// the blocks of b. The caller owns nc and e, and closes them after
// Shutdown.
func New(nc *nats.Conn, e *executor.Executor, b Blocks, cfg Config) (*Worker, error) {
	if cfg.maxDeliver == 0 {
		return nil, &ConfigError{Field: "Config", Problem: "not made with NewConfig"}
	}
	if nc == nil || e == nil || b == nil {
		return nil, &ConfigError{Field: "New", Problem: "needs a NATS connection, an executor and blocks"}
	}
	if cfg.maxDeliver < 1 || cfg.heartbeat <= 0 || cfg.fetchWait <= 0 {
		return nil, &ConfigError{Field: "MaxDeliver, Heartbeat or FetchWait", Problem: "must be positive"}
	}
	if cfg.slots == 0 {
		s, _ := e.Stats(executor.DefaultPool)
		cfg.slots = s.Capacity
	}
	if cfg.slots < 1 {
		return nil, &ConfigError{Field: "Slots", Problem: fmt.Sprintf("%d: need at least 1", cfg.slots)}
	}
	if cfg.id == "" {
		h, _ := os.Hostname()
		cfg.id = h + "-" + strconv.Itoa(os.Getpid())
	}
	logger := cfg.logger
	if logger == nil {
		logger = hclog.NewNullLogger()
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("worker: %w", err)
	}
	w := &Worker{
		cfg: cfg, nc: nc, js: js, e: e, blocks: b, logger: logger.Named("worker").With("worker_id", cfg.id),
		slots: make(chan struct{}, cfg.slots), stopFetch: make(chan struct{}), stopLoops: make(chan struct{}),
		inflight: map[*entry]struct{}{}, cancelled: map[string]time.Time{},
	}
	w.pubCtx, w.pubCancel = context.WithCancel(context.Background())
	w.m = newMetrics(w)
	if cfg.registerer != nil {
		if err := w.m.register(cfg.registerer); err != nil {
			return nil, fmt.Errorf("worker: registering metrics: %w", err)
		}
	}
	return w, nil
}

// ID is the worker's id.
func (w *Worker) ID() string { return w.cfg.id }

// Start creates the streams and the consumer where missing, subscribes
// to cancel requests and starts taking assignments. It returns once the
// worker is running; Shutdown stops it.
func (w *Worker) Start(ctx context.Context) error {
	if !w.started.CompareAndSwap(false, true) {
		return ErrClosed
	}
	cons, err := EnsureStreams(ctx, w.js, w.cfg.streams)
	if err != nil {
		return err
	}
	w.cons = cons
	// Approvals first: a cancel replayed from the cancel stream may
	// withdraw one. A worker whose blocks do not run human.approval takes
	// no part, so it never answers a decision it could not turn into a
	// result.
	if w.hostsApprovals() {
		if err := w.startApprovals(ctx); err != nil {
			return err
		}
	}
	cc, err := w.js.OrderedConsumer(ctx, StreamCancel, jetstream.OrderedConsumerConfig{FilterSubjects: []string{SubjectCancel}})
	if err != nil {
		return fmt.Errorf("worker: cancel subscription: %w", err)
	}
	if w.cancelSub, err = cc.Consume(w.onCancel); err != nil {
		return fmt.Errorf("worker: cancel subscription: %w", err)
	}
	w.publishHeartbeat()
	w.loops.Add(2)
	w.fetching.Add(1)
	go w.fetchLoop()
	go w.keepAliveLoop()
	go w.heartbeatLoop()
	w.logger.Info("worker started", "slots", w.cfg.slots, "ack_wait", w.cfg.streams.AckWait, "max_deliver", w.cfg.maxDeliver)
	return nil
}

// Draining reports whether Shutdown has begun.
func (w *Worker) Draining() bool { return w.draining.Load() }

// Shutdown drains the worker: it stops fetching, hands back (naks) every
// assignment fetched but not started so that another worker takes it at
// once, and waits for the running steps to end and their results to be
// published. If ctx ends first, the steps still running are cancelled and
// handed back too, without a result from this worker, and results it
// could not publish are abandoned: their assignments are delivered again
// after the ack wait. A call while a shutdown is under way waits with it.
func (w *Worker) Shutdown(ctx context.Context) error {
	if !w.started.Load() {
		w.started.Store(true)
		w.draining.Store(true)
		return nil
	}
	if w.draining.CompareAndSwap(false, true) {
		w.logger.Info("draining")
		close(w.stopFetch)
		// The fetch under way ends within the fetch wait; what it still
		// delivers is handed back by take. Handing back before it ends
		// would let the same fetch take the assignments again.
		w.fetching.Wait()
		w.mu.Lock()
		for e := range w.inflight {
			if !e.started.Load() {
				e.handBack.Store(true)
				e.cancel(ErrHandedBack)
			}
		}
		w.mu.Unlock()
	}
	done := make(chan struct{})
	go func() {
		w.steps.Wait()
		close(done)
	}()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		err = context.Cause(ctx)
		w.mu.Lock()
		for e := range w.inflight {
			e.handBack.Store(true)
			e.cancel(ErrHandedBack)
		}
		w.mu.Unlock()
		w.pubCancel()
		<-done
	}
	w.stop()
	return err
}

// stop ends the loops and the cancel subscription, once.
func (w *Worker) stop() {
	select {
	case <-w.stopLoops:
		w.loops.Wait()
		return
	default:
	}
	close(w.stopLoops)
	w.loops.Wait()
	w.approvalsOf().close()
	if w.cancelSub != nil {
		w.cancelSub.Stop()
		<-w.cancelSub.Closed()
	}
	w.pubCancel()
	w.logger.Info("stopped")
}

// CancelRunning cancels every step the worker holds; each ends as
// cancelled and its result is published. It is what a second Ctrl-C
// does during a drain.
func (w *Worker) CancelRunning() {
	w.mu.Lock()
	defer w.mu.Unlock()
	for e := range w.inflight {
		if !e.handBack.Load() {
			e.cancel(ErrCancelled)
		}
	}
}

// fetchLoop takes assignments, never more than the free slots.
func (w *Worker) fetchLoop() {
	defer w.fetching.Done()
	backoff := 50 * time.Millisecond
	for {
		select {
		case w.slots <- struct{}{}:
		case <-w.stopFetch:
			return
		}
		n := 1
	more:
		for n < cap(w.slots) {
			select {
			case w.slots <- struct{}{}:
				n++
			default:
				break more
			}
		}
		batch, err := w.cons.Fetch(n, jetstream.FetchMaxWait(w.cfg.fetchWait))
		if err != nil {
			w.release(n)
			w.logger.Warn("fetch failed; retrying", "error", err, "in", backoff)
			select {
			case <-time.After(backoff):
				backoff = min(2*backoff, 2*time.Second)
			case <-w.stopFetch:
				return
			}
			continue
		}
		backoff = 50 * time.Millisecond
		got := 0
		for msg := range batch.Messages() {
			got++
			w.take(msg)
		}
		if err := batch.Error(); err != nil && !errors.Is(err, nats.ErrTimeout) && !errors.Is(err, context.DeadlineExceeded) {
			w.logger.Debug("fetch ended", "error", err)
		}
		w.release(n - got)
	}
}

func (w *Worker) release(n int) {
	for range n {
		<-w.slots
	}
}

// take handles one fetched message, which holds one slot until answered.
func (w *Worker) take(msg jetstream.Msg) {
	w.m.fetched.Inc()
	var deliveries, seq uint64 = 1, 0
	if meta, err := msg.Metadata(); err == nil {
		deliveries, seq = meta.NumDelivered, meta.Sequence.Stream
	}
	if deliveries > 1 {
		w.m.redelivered.Inc()
	}
	if w.draining.Load() {
		w.nak(msg, 0)
		w.release(1)
		return
	}
	w.steps.Add(1)
	go func() {
		defer w.steps.Done()
		defer w.release(1)
		w.process(msg, deliveries, seq)
	}()
}

// process validates one assignment and runs it, or dead-letters it.
func (w *Worker) process(msg jetstream.Msg, deliveries, seq uint64) {
	accepted := time.Now()
	a, err := DecodeAssignment(msg.Data())
	if err == nil && deliveries > uint64(w.cfg.maxDeliver) {
		err = &ValidationError{Reason: ReasonMaxDeliver, Message: fmt.Sprintf(
			"delivered %d times without an outcome, more than the limit of %d: every worker that took it stopped before answering", deliveries, w.cfg.maxDeliver)}
	}
	var st Step
	if err == nil {
		st, err = w.blocks.Step(a)
	}
	var verr *ValidationError
	switch {
	case errors.As(err, &verr):
		w.deadLetter(msg, a, verr, deliveries, seq, accepted)
		return
	case err != nil:
		w.publishAck(ackOf(a, w.cfg.id, AckError, "", err.Error()))
		w.logger.Warn("cannot run the assignment now; handing it back", "assignment_id", a.AssignmentID, "error", err)
		w.nak(msg, time.Second)
		return
	case isApproval(st):
		w.park(msg, a, accepted, deliveries, seq)
		return
	}
	w.run(msg, a, st, accepted, seq)
}

// run submits the step and answers its assignment.
func (w *Worker) run(msg jetstream.Msg, a *Assignment, st Step, accepted time.Time, seq uint64) {
	req := st.Request
	req.Step.ID = a.AssignmentID
	req.IdempotencyKey = a.AssignmentID
	req.TenantID, req.TraceID, req.RunID = a.TenantID, a.TraceID, a.RunID
	ctx, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	e := &entry{msg: msg, a: a, cancel: cancel, touched: accepted}
	req.Runner = startSignal{Runner: req.Runner, e: e}

	w.mu.Lock()
	w.inflight[e] = struct{}{}
	if _, ok := w.cancelled[a.AssignmentID]; ok {
		cancel(ErrCancelled)
	}
	w.mu.Unlock()
	w.publishAck(ackOf(a, w.cfg.id, AckAccepted, "", ""))

	res := w.e.Submit(ctx, req).Result()

	w.mu.Lock()
	delete(w.inflight, e)
	w.mu.Unlock()
	switch {
	case e.handBack.Load():
		w.logger.Debug("handing back", "assignment_id", a.AssignmentID, "status", res.Status)
		w.nak(msg, 0)
		return
	case res.Attempts == 0 && res.Error != nil && res.Error.Code == abi.CodeSystemOverload && res.Status == abi.StatusError:
		// Refused at the door (a pool or tenant at its limit): the
		// assignment waits in the stream instead of failing.
		delay := time.Second
		if res.Error.RetryAfterMS != nil {
			delay = time.Duration(*res.Error.RetryAfterMS) * time.Millisecond
		}
		w.nak(msg, delay)
		return
	}
	r := newResult(a, w.cfg.id)
	r.fromStep(res, accepted, st.Output)
	w.answer(msg, r, seq)
}

// startSignal marks its entry started when the executor begins the
// first attempt, so a drain knows which steps it may still hand back.
type startSignal struct {
	host.Runner
	e *entry
}

func (s startSignal) Run(ctx context.Context, step host.Step) *abi.StepResult {
	s.e.started.Store(true)
	return s.Runner.Run(ctx, step)
}

// deadLetter answers an assignment that can never succeed: a rejected
// ack, a dead letter, an error result, then the ack of the message.
func (w *Worker) deadLetter(msg jetstream.Msg, a *Assignment, verr *ValidationError, deliveries, seq uint64, accepted time.Time) {
	w.publishAck(ackOf(a, w.cfg.id, AckRejected, verr.Reason, verr.Message))
	dl := &DeadLetter{AssignmentID: a.AssignmentID, RequestID: a.RequestID, TenantID: a.TenantID, TraceID: a.TraceID,
		Reason: verr.Reason, Message: verr.Message, Deliveries: deliveries, WorkerID: w.cfg.id, DeadAt: time.Now().UnixMilli()}
	if data := msg.Data(); json.Valid(data) {
		dl.Assignment = data
	} else {
		dl.AssignmentBase64 = data
	}
	body, _ := json.Marshal(dl)
	if !w.publish(SubjectDLQ, body, "dlq:"+msgID(a, seq)) {
		return // shutting down: redelivered later
	}
	w.m.deadLetters.WithLabelValues(verr.Reason).Inc()
	w.logger.Warn("dead letter", "assignment_id", a.AssignmentID, "reason", verr.Reason, "message", verr.Message)
	code := abi.CodeInvalidInput
	switch verr.Reason {
	case ReasonMissingID, ReasonMissingJobType:
		code = abi.CodeMissingRequiredField
	case ReasonInvalidJSON:
		code = abi.CodeInvalidFormat
	case ReasonMaxDeliver:
		code = abi.CodeExecutionFailed
	}
	r := failure(a, w.cfg.id, StatusError, abi.NewError(code, abi.ClassPermanent, verr.Reason+": "+verr.Message), accepted)
	w.answer(msg, r, seq)
}

// msgID is the JetStream message id of an assignment's result: its id,
// or its stream sequence when it has none.
func msgID(a *Assignment, seq uint64) string {
	if a != nil && a.AssignmentID != "" {
		return a.AssignmentID
	}
	return "seq:" + strconv.FormatUint(seq, 10)
}

// answer publishes the result and, once JetStream has stored it (or
// dropped it as a duplicate), acknowledges the assignment.
func (w *Worker) answer(msg jetstream.Msg, r *Result, seq uint64) {
	body, err := json.Marshal(r)
	if err != nil { // cannot happen: every field marshals
		w.logger.Error("encoding a result", "error", err)
		return
	}
	a := &Assignment{AssignmentID: r.AssignmentID}
	if !w.publish(SubjectResult, body, msgID(a, seq)) {
		return
	}
	if err := msg.Ack(); err != nil {
		w.logger.Warn("acking an assignment failed; it will be delivered again and its result dropped as a duplicate", "assignment_id", r.AssignmentID, "error", err)
		return
	}
	w.m.acked.Inc()
}

// publish publishes body to a stream with id as its message id, retrying
// until JetStream acknowledges it or a shutdown gives up; it reports
// whether it was stored (or dropped as a duplicate).
func (w *Worker) publish(subject string, body []byte, id string) bool {
	backoff := 100 * time.Millisecond
	for {
		ctx, cancel := context.WithTimeout(w.pubCtx, 5*time.Second)
		ack, err := w.js.Publish(ctx, subject, body, jetstream.WithMsgID(id))
		cancel()
		if err == nil {
			if subject == SubjectResult {
				if ack.Duplicate {
					w.m.duplicates.Inc()
				} else {
					w.m.published.Inc()
				}
			}
			return true
		}
		if w.pubCtx.Err() != nil {
			w.logger.Warn("not published: shutting down; the assignment will be delivered again", "subject", subject, "id", id)
			return false
		}
		w.logger.Warn("publish failed; retrying", "subject", subject, "id", id, "error", err, "in", backoff)
		select {
		case <-time.After(backoff):
			backoff = min(2*backoff, 2*time.Second)
		case <-w.pubCtx.Done():
		}
	}
}

func (w *Worker) nak(msg jetstream.Msg, delay time.Duration) {
	var err error
	if delay > 0 {
		err = msg.NakWithDelay(delay)
	} else {
		err = msg.Nak()
	}
	if err != nil {
		w.logger.Debug("nak failed; the assignment returns after the ack wait", "error", err)
	}
	w.m.nakd.Inc()
}

func (w *Worker) publishAck(ack *AssignmentAck) {
	b, _ := json.Marshal(ack)
	if err := w.nc.Publish(SubjectAssignAck, b); err != nil {
		w.logger.Debug("publishing an ack failed", "error", err)
	}
}

// onCancel handles one cancel request.
func (w *Worker) onCancel(msg jetstream.Msg) {
	var c Cancel
	if err := json.Unmarshal(msg.Data(), &c); err != nil || c.AssignmentID == "" {
		w.logger.Warn("ignoring a cancel request without an assignment_id", "data", string(msg.Data()))
		return
	}
	now := time.Now()
	// A parked approval holds no entry: withdraw it from the bucket.
	defer w.approvalsOf().withdraw(c.AssignmentID, c.Reason)
	w.mu.Lock()
	defer w.mu.Unlock()
	w.cancelled[c.AssignmentID] = now
	if len(w.cancelled)%1024 == 0 {
		for id, t := range w.cancelled {
			if now.Sub(t) > w.cfg.streams.CancelMemory {
				delete(w.cancelled, id)
			}
		}
	}
	for e := range w.inflight {
		if e.a.AssignmentID == c.AssignmentID && !e.handBack.Load() {
			w.logger.Info("cancelling over the wire", "assignment_id", c.AssignmentID)
			e.cancel(ErrCancelled)
		}
	}
}

// keepAliveLoop tells JetStream that held assignments are in progress,
// so none is delivered again while it runs.
func (w *Worker) keepAliveLoop() {
	defer w.loops.Done()
	every := max(w.cfg.streams.AckWait/3, 10*time.Millisecond)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-w.stopLoops:
			return
		case now := <-t.C:
			w.mu.Lock()
			var due []jetstream.Msg
			for e := range w.inflight {
				if now.Sub(e.touched) >= every {
					e.touched = now
					due = append(due, e.msg)
				}
			}
			w.mu.Unlock()
			for _, m := range due {
				if err := m.InProgress(); err != nil {
					w.logger.Debug("in-progress signal failed", "error", err)
				}
			}
		}
	}
}

func (w *Worker) heartbeatLoop() {
	defer w.loops.Done()
	t := time.NewTicker(w.cfg.heartbeat)
	defer t.Stop()
	for {
		select {
		case <-w.stopLoops:
			return
		case <-t.C:
			w.publishHeartbeat()
		}
	}
}

// Heartbeat returns the worker's current heartbeat.
func (w *Worker) Heartbeat() Heartbeat {
	hb := Heartbeat{WorkerID: w.cfg.id, Version: w.cfg.version, Status: "ready", Capacity: w.cfg.slots,
		Timestamp: time.Now().UnixMilli(), Breakers: w.e.BreakerStates()}
	switch {
	case w.draining.Load():
		hb.Status = "draining"
	case !w.nc.IsConnected():
		hb.Status = "disconnected"
	}
	w.mu.Lock()
	hb.InFlight = len(w.inflight)
	w.mu.Unlock()
	for _, name := range w.e.Pools() {
		s, _ := w.e.Stats(name)
		hb.Pools = append(hb.Pools, PoolLoad{Name: name, Capacity: s.Capacity, InFlight: s.InFlight, QueueDepth: s.Queued, Backoff: s.Backoff})
	}
	return hb
}

func (w *Worker) publishHeartbeat() {
	b, _ := json.Marshal(w.Heartbeat())
	if err := w.nc.Publish(SubjectHeartbeat, b); err != nil {
		w.logger.Debug("publishing a heartbeat failed", "error", err)
		return
	}
	w.lastHeartbeat.Store(time.Now().UnixNano())
}
