package executor

import (
	"errors"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/sony/gobreaker/v2"
)

// breakers holds one circuit breaker per dependency, made on first use.
//
// gobreaker decides when to trip, probe and close; this wrapper adds what
// it does not do itself: it maps an attempt's Verdict to gobreaker's
// success, failure or exclusion (only unhealthy failures count, a
// cancellation counts as nothing), remembers when an open circuit will let
// probes through so a refusal can carry a retry-after hint, and reports
// every state change to the logs and the metrics.
type breakers struct {
	cfg     BreakerConfig
	logger  hclog.Logger
	metrics *metrics

	mu sync.Mutex
	m  map[string]*breaker
}

type breaker struct {
	cb *gobreaker.TwoStepCircuitBreaker[struct{}]

	mu       sync.Mutex
	openedAt time.Time // when the circuit last opened
}

// Outcomes of an attempt as gobreaker sees them: nil is a success.
var (
	errUnhealthy = errors.New("dependency unhealthy")
	errExcluded  = errors.New("outcome says nothing about the dependency")
)

func newBreakers(cfg BreakerConfig, logger hclog.Logger, m *metrics) *breakers {
	return &breakers{cfg: cfg, logger: logger, metrics: m, m: map[string]*breaker{}}
}

func (bs *breakers) get(dep string) *breaker {
	bs.mu.Lock()
	defer bs.mu.Unlock()
	if b, ok := bs.m[dep]; ok {
		return b
	}
	b := &breaker{}
	cfg := bs.cfg
	b.cb = gobreaker.NewTwoStepCircuitBreaker[struct{}](gobreaker.Settings{
		Name:         dep,
		MaxRequests:  cfg.HalfOpenProbes,
		Interval:     cfg.Window,
		BucketPeriod: cfg.Window / 10,
		Timeout:      cfg.OpenFor,
		ReadyToTrip: func(c gobreaker.Counts) bool {
			if c.ConsecutiveFailures >= cfg.ConsecutiveFailures {
				return true
			}
			n := c.TotalSuccesses + c.TotalFailures
			return n >= cfg.MinRequests && float64(c.TotalFailures) >= cfg.FailureRatio*float64(n)
		},
		IsSuccessful: func(err error) bool { return err == nil },
		IsExcluded:   func(err error) bool { return errors.Is(err, errExcluded) },
		// Called with gobreaker's lock held: it must not call back into
		// the breaker.
		OnStateChange: func(name string, from, to gobreaker.State) {
			if to == gobreaker.StateOpen {
				b.mu.Lock()
				b.openedAt = time.Now()
				b.mu.Unlock()
			}
			bs.metrics.breakerChanged(name, to)
			level := hclog.Info
			if to == gobreaker.StateOpen {
				level = hclog.Warn
			}
			bs.logger.Log(level, "circuit breaker changed state", "dependency", name, "from", from.String(), "to", to.String())
		},
	})
	bs.m[dep] = b
	bs.metrics.breakerChanged(dep, gobreaker.StateClosed)
	return b
}

// allow asks dep's breaker whether an attempt may start. It returns the
// function that records the attempt's verdict, or, when the circuit
// refuses, how long until it lets probes through again.
func (bs *breakers) allow(dep string) (done func(Verdict, bool), retryAfter time.Duration, ok bool) {
	b := bs.get(dep)
	report, err := b.cb.Allow()
	if err != nil {
		b.mu.Lock()
		wait := time.Until(b.openedAt.Add(bs.cfg.OpenFor))
		b.mu.Unlock()
		return nil, max(wait, 0), false
	}
	return func(v Verdict, counts bool) { report(outcome(v, counts)) }, 0, true
}

// record counts an attempt's verdict against dep, for a dependency
// learned from the result rather than given in advance. A circuit that
// refuses is left as it is.
func (bs *breakers) record(dep string, v Verdict, counts bool) {
	if report, err := bs.get(dep).cb.Allow(); err == nil {
		report(outcome(v, counts))
	}
}

// outcome maps a verdict to gobreaker's terms; counts is false for an
// attempt that ended because its step was cancelled or ran out of time.
func outcome(v Verdict, counts bool) error {
	switch {
	case !counts:
		return errExcluded
	case v.Unhealthy:
		return errUnhealthy
	}
	return nil
}

// state returns dep's circuit state, or false when dep has no breaker.
func (bs *breakers) state(dep string) (gobreaker.State, bool) {
	bs.mu.Lock()
	b, ok := bs.m[dep]
	bs.mu.Unlock()
	if !ok {
		return gobreaker.StateClosed, false
	}
	return b.cb.State(), true
}

// each calls fn with every dependency's current state. Reading the state
// also moves an open circuit whose time is up to half-open, so a scrape
// never shows a stale "open".
func (bs *breakers) each(fn func(dep string, s gobreaker.State)) {
	bs.mu.Lock()
	all := make(map[string]*breaker, len(bs.m))
	for k, v := range bs.m {
		all[k] = v
	}
	bs.mu.Unlock()
	for dep, b := range all {
		fn(dep, b.cb.State())
	}
}
