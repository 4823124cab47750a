package executor

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sony/gobreaker/v2"

	"github.com/blockhost/blockhost/abi"
)

// metrics are the executor's Prometheus metrics, all named
// blockhost_executor_*. Counters and histograms are updated as steps
// move; the gauges of pool load and breaker state are read from the pools
// and breakers when scraped, so they cost nothing per step and are always
// a consistent snapshot.
type metrics struct {
	steps          *prometheus.CounterVec
	attempts       *prometheus.CounterVec
	retries        *prometheus.CounterVec
	retriesDenied  *prometheus.CounterVec
	stepSeconds    *prometheus.HistogramVec
	attemptSeconds *prometheus.HistogramVec
	queueWait      *prometheus.HistogramVec
	rejections     *prometheus.CounterVec
	abandoned      *prometheus.CounterVec
	transitions    *prometheus.CounterVec

	e *Executor
}

const ns = "blockhost_executor_"

var (
	descQueueDepth = prometheus.NewDesc(ns+"queue_depth", "Steps waiting in a pool's queue for a worker, by priority.", []string{"pool", "priority"}, nil)
	descInFlight   = prometheus.NewDesc(ns+"in_flight", "Attempts holding a worker, abandoned ones included.", []string{"pool"}, nil)
	descBackoff    = prometheus.NewDesc(ns+"backoff", "Steps waiting between attempts.", []string{"pool"}, nil)
	descAbandoned  = prometheus.NewDesc(ns+"abandoned_in_flight", "Attempts whose step ended but that have not returned yet.", []string{"pool"}, nil)
	descCapacity   = prometheus.NewDesc(ns+"capacity", "Most steps a pool holds: concurrency plus queue size.", []string{"pool"}, nil)
	descBreaker    = prometheus.NewDesc(ns+"breaker_state", "1 for the current circuit state of a dependency, 0 for the others.", []string{"dependency", "state"}, nil)
)

func newMetrics(e *Executor) *metrics {
	durations := prometheus.ExponentialBucketsRange(0.0005, 300, 20)
	return &metrics{
		e: e,
		steps: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: ns + "steps_total", Help: "Finished steps by pool, block, status and error code (0 for none).",
		}, []string{"pool", "block", "status", "code"}),
		attempts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: ns + "attempts_total", Help: "Attempts started.",
		}, []string{"pool", "block"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: ns + "retries_total", Help: "Attempts after the first.",
		}, []string{"pool", "block"}),
		retriesDenied: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: ns + "retries_denied_total", Help: "Retryable failures not retried, by reason: attempts, budget, deadline.",
		}, []string{"pool", "reason"}),
		stepSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: ns + "step_duration_seconds", Help: "Time from Submit to result.", Buckets: durations,
		}, []string{"pool", "block", "status"}),
		attemptSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: ns + "attempt_duration_seconds", Help: "Time of one attempt.", Buckets: durations,
		}, []string{"pool", "block"}),
		queueWait: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: ns + "queue_wait_seconds", Help: "Time a step waited in its queue for a worker.", Buckets: durations,
		}, []string{"pool", "priority"}),
		rejections: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: ns + "rejections_total", Help: "Steps refused without running, by reason: full, evicted, tenant_limit, closed, invalid.",
		}, []string{"pool", "reason"}),
		abandoned: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: ns + "abandoned_total", Help: "Attempts that did not return within the abandon grace after their step ended.",
		}, []string{"pool"}),
		transitions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: ns + "breaker_transitions_total", Help: "Circuit state changes by dependency and new state.",
		}, []string{"dependency", "state"}),
	}
}

func (m *metrics) register(r prometheus.Registerer) error {
	for _, c := range []prometheus.Collector{m.steps, m.attempts, m.retries, m.retriesDenied, m.stepSeconds,
		m.attemptSeconds, m.queueWait, m.rejections, m.abandoned, m.transitions, (*loadCollector)(m)} {
		if err := r.Register(c); err != nil {
			return err
		}
	}
	return nil
}

func codeLabel(res *abi.StepResult) string {
	if res.Error == nil {
		return "0"
	}
	return strconv.FormatUint(uint64(res.Error.Code), 10)
}

func (m *metrics) breakerChanged(dep string, to gobreaker.State) {
	m.transitions.WithLabelValues(dep, to.String()).Inc()
}

// loadCollector reads pool load and breaker state at scrape time.
type loadCollector metrics

func (c *loadCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descQueueDepth, descInFlight, descBackoff, descAbandoned, descCapacity, descBreaker} {
		ch <- d
	}
}

func (c *loadCollector) Collect(ch chan<- prometheus.Metric) {
	e := c.e
	for _, p := range e.poolList {
		s := p.stats()
		for prio, n := range s.QueuedByPriority {
			ch <- prometheus.MustNewConstMetric(descQueueDepth, prometheus.GaugeValue, float64(n), p.name, prio.String())
		}
		ch <- prometheus.MustNewConstMetric(descInFlight, prometheus.GaugeValue, float64(s.InFlight), p.name)
		ch <- prometheus.MustNewConstMetric(descBackoff, prometheus.GaugeValue, float64(s.Backoff), p.name)
		ch <- prometheus.MustNewConstMetric(descAbandoned, prometheus.GaugeValue, float64(s.Abandoned), p.name)
		ch <- prometheus.MustNewConstMetric(descCapacity, prometheus.GaugeValue, float64(s.Capacity), p.name)
	}
	if e.breakers != nil {
		e.breakers.each(func(dep string, st gobreaker.State) {
			for _, s := range []gobreaker.State{gobreaker.StateClosed, gobreaker.StateHalfOpen, gobreaker.StateOpen} {
				v := 0.0
				if s == st {
					v = 1
				}
				ch <- prometheus.MustNewConstMetric(descBreaker, prometheus.GaugeValue, v, dep, s.String())
			}
		})
	}
}
