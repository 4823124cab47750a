package executor

import (
	"cmp"
	"sync"
	"time"
)

// qstate is where a step stands in its pool.
type qstate uint8

const (
	qNone    qstate = iota // not admitted yet
	qQueued                // waiting for a worker
	qRunning               // holding a worker
	qBackoff               // waiting between attempts, holding no worker
	qDone                  // out of the pool
)

type wakeReason uint8

const (
	wakeGrant wakeReason = iota + 1 // the step now holds a worker
	wakeEvict                       // the step lost its place to higher-priority work
)

// links chain a step into one of the pool's lists.
type links struct{ prev, next *step }

// stepList is an intrusive FIFO: k selects which of a step's links it
// uses, so a step can be in a level list and the age list at once without
// any allocation.
type stepList struct {
	head, tail *step
	k          int
}

const (
	linkLevel = 0
	linkAge   = 1
)

func (l *stepList) pushBack(s *step) {
	ln := &s.link[l.k]
	ln.prev, ln.next = l.tail, nil
	if l.tail != nil {
		l.tail.link[l.k].next = s
	} else {
		l.head = s
	}
	l.tail = s
}

func (l *stepList) remove(s *step) {
	ln := &s.link[l.k]
	if ln.prev != nil {
		ln.prev.link[l.k].next = ln.next
	} else {
		l.head = ln.next
	}
	if ln.next != nil {
		ln.next.link[l.k].prev = ln.prev
	} else {
		l.tail = ln.prev
	}
	ln.prev, ln.next = nil, nil
}

// pool is one resource pool: a bounded set of steps, at most Concurrency
// of them holding a worker, the others queued by priority or waiting to
// retry. Every count changes under mu together with the lists, so a
// snapshot always satisfies queued + running + backoff ≤ capacity.
type pool struct {
	name     string
	cfg      PoolConfig
	capacity int
	aging    time.Duration

	mu        sync.Mutex
	queued    int
	running   int // abandoned attempts included: they still hold a worker
	backoff   int
	abandoned int
	byLevel   [numLevels]int
	tenants   map[string]int
	levels    [numLevels]stepList
	age       stepList
	// attemptEWMA is a moving average of attempt durations, for the
	// retry-after hint of a refusal.
	attemptEWMA time.Duration
}

func newPool(name string, cfg PoolConfig) *pool {
	p := &pool{name: name, cfg: cfg, capacity: cfg.Concurrency + cfg.QueueSize, aging: cmp.Or(cfg.AgingLimit, DefaultAgingLimit), tenants: map[string]int{}}
	p.age.k = linkAge
	return p
}

// PoolStats is a consistent snapshot of one pool's load.
type PoolStats struct {
	// Capacity is Concurrency + QueueSize: the most steps the pool holds.
	Capacity, Concurrency, QueueSize int
	// Queued steps wait for a worker; InFlight attempts hold one
	// (Abandoned ones included); Backoff steps wait between attempts.
	// Queued + InFlight + Backoff ≤ Capacity.
	Queued, InFlight, Backoff, Abandoned int
	// QueuedByPriority splits Queued by priority.
	QueuedByPriority map[Priority]int
}

func (p *pool) stats() PoolStats {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := PoolStats{
		Capacity: p.capacity, Concurrency: p.cfg.Concurrency, QueueSize: p.cfg.QueueSize,
		Queued: p.queued, InFlight: p.running, Backoff: p.backoff, Abandoned: p.abandoned,
		QueuedByPriority: make(map[Priority]int, numLevels),
	}
	for lv, n := range p.byLevel {
		s.QueuedByPriority[Priority(lv)+PriorityLow] = n
	}
	return s
}

type admission uint8

const (
	admitGranted admission = iota + 1
	admitQueued
	refuseFull
	refuseTenant
)

// admit takes s into the pool if there is room, or room can be made by
// evicting lower-priority queued work that has not started; the evicted
// step, if any, is returned and has been woken.
func (p *pool) admit(s *step, now time.Time) (admission, *step, time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if lim := p.cfg.TenantLimit; lim > 0 && p.tenants[s.tenant] >= lim {
		return refuseTenant, nil, p.hintLocked()
	}
	var victim *step
	if p.queued+p.running+p.backoff >= p.capacity {
		victim = p.victimLocked(s.level)
		if victim == nil {
			return refuseFull, nil, p.hintLocked()
		}
		p.unqueueLocked(victim)
		p.leftLocked(victim)
		victim.qs = qDone
		victim.wake <- wakeEvict
	}
	p.tenants[s.tenant]++
	if p.running < p.cfg.Concurrency {
		p.running++
		s.qs = qRunning
		s.granted = true
		return admitGranted, victim, 0
	}
	p.enqueueLocked(s, now)
	return admitQueued, victim, 0
}

// victimLocked returns the newest never-started queued step of the lowest
// priority below level, or nil.
func (p *pool) victimLocked(level int) *step {
	for lv := 0; lv < level; lv++ {
		for v := p.levels[lv].tail; v != nil; v = v.link[linkLevel].prev {
			if !v.granted {
				return v
			}
		}
	}
	return nil
}

// hintLocked estimates how long until the pool has room: the average
// attempt time for each round of queued work ahead, at least 10ms and at
// most 30s.
func (p *pool) hintLocked() time.Duration {
	rounds := (p.queued + p.running) / p.cfg.Concurrency
	return min(max(p.attemptEWMA*time.Duration(rounds+1), 10*time.Millisecond), 30*time.Second)
}

func (p *pool) enqueueLocked(s *step, now time.Time) {
	s.qs = qQueued
	s.enqueued = now
	p.levels[s.level].pushBack(s)
	p.age.pushBack(s)
	p.queued++
	p.byLevel[s.level]++
}

func (p *pool) unqueueLocked(s *step) {
	p.levels[s.level].remove(s)
	p.age.remove(s)
	p.queued--
	p.byLevel[s.level]--
}

// leftLocked forgets a step that leaves the pool for good.
func (p *pool) leftLocked(s *step) {
	if n := p.tenants[s.tenant] - 1; n > 0 {
		p.tenants[s.tenant] = n
	} else {
		delete(p.tenants, s.tenant)
	}
}

// pickLocked chooses the next step to run: the oldest queued step if it
// has waited the aging limit, else the oldest of the highest priority.
func (p *pool) pickLocked(now time.Time) *step {
	if old := p.age.head; old != nil && now.Sub(old.enqueued) >= p.aging {
		return old
	}
	for lv := numLevels - 1; lv >= 0; lv-- {
		if h := p.levels[lv].head; h != nil {
			return h
		}
	}
	return nil
}

// dispatchLocked hands free workers to queued steps.
func (p *pool) dispatchLocked(now time.Time) {
	for p.running < p.cfg.Concurrency {
		next := p.pickLocked(now)
		if next == nil {
			return
		}
		p.unqueueLocked(next)
		p.running++
		next.qs = qRunning
		next.granted = true
		next.wake <- wakeGrant
	}
}

// release gives up s's worker; s moves to next, qBackoff or qDone.
// took is how long the attempt ran, zero if none ran.
func (p *pool) release(s *step, next qstate, took time.Duration, wasAbandoned bool) {
	now := time.Now()
	p.mu.Lock()
	defer p.mu.Unlock()
	p.running--
	if wasAbandoned {
		p.abandoned--
	}
	if took > 0 {
		p.attemptEWMA += (took - p.attemptEWMA) / 8
	}
	s.qs = next
	switch next {
	case qBackoff:
		p.backoff++
	case qDone:
		p.leftLocked(s)
	}
	p.dispatchLocked(now)
}

// requeue moves s from backoff to run again: at once if a worker is free
// (true), else into the queue.
func (p *pool) requeue(s *step) bool {
	now := time.Now()
	p.mu.Lock()
	defer p.mu.Unlock()
	p.backoff--
	if p.running < p.cfg.Concurrency {
		p.running++
		s.qs = qRunning
		return true
	}
	p.enqueueLocked(s, now)
	return false
}

// endBackoff takes s out of the pool while it waits between attempts.
func (p *pool) endBackoff(s *step) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.backoff--
	s.qs = qDone
	p.leftLocked(s)
}

// leave takes a queued s out of the pool because it gave up waiting. It
// returns the state s was in: qQueued when it left, qRunning when a worker
// was granted first, qDone when it was evicted first; in the last two
// cases a wake is pending on s.wake.
func (p *pool) leave(s *step) qstate {
	p.mu.Lock()
	defer p.mu.Unlock()
	was := s.qs
	if was == qQueued {
		p.unqueueLocked(s)
		p.leftLocked(s)
		s.qs = qDone
	}
	return was
}

func (p *pool) addAbandoned() {
	p.mu.Lock()
	p.abandoned++
	p.mu.Unlock()
}
