package worker

import (
	"encoding/json"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

type metrics struct {
	fetched, acked, nakd, redelivered, published, duplicates prometheus.Counter
	deadLetters, approvals                                   *prometheus.CounterVec
	collectors                                               []prometheus.Collector
}

func newMetrics(w *Worker) *metrics {
	const ns = "blockhost_worker_"
	c := func(name, help string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{Name: ns + name, Help: help})
	}
	m := &metrics{
		fetched:     c("fetched_total", "Assignment deliveries taken from the stream."),
		acked:       c("acked_total", "Assignments acknowledged after their result was stored."),
		nakd:        c("nakd_total", "Assignment deliveries handed back: draining, overloaded or unable to run now."),
		redelivered: c("redelivered_total", "Deliveries of an assignment after its first."),
		published:   c("results_published_total", "Results stored by the results stream."),
		duplicates:  c("results_duplicate_total", "Results the results stream dropped as duplicates of one it holds."),
		deadLetters: prometheus.NewCounterVec(prometheus.CounterOpts{Name: ns + "dead_letters_total",
			Help: "Assignments sent to the dead-letter subject, by reason."}, []string{"reason"}),
		approvals: prometheus.NewCounterVec(prometheus.CounterOpts{Name: ns + "approvals_ended_total",
			Help: "human.approval steps ended here, by how: approved, denied, expired or withdrawn."}, []string{"state"}),
	}
	m.collectors = []prometheus.Collector{m.fetched, m.acked, m.nakd, m.redelivered, m.published, m.duplicates, m.deadLetters, m.approvals,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: ns + "approvals_pending", Help: "human.approval steps waiting for a decision, as this worker sees the bucket."},
			func() float64 {
				if ap := w.approvalsOf(); ap != nil {
					return float64(ap.pending())
				}
				return 0
			}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: ns + "heartbeat_age_seconds", Help: "Time since the last heartbeat was published."},
			func() float64 {
				last := w.lastHeartbeat.Load()
				if last == 0 {
					return 0
				}
				return time.Since(time.Unix(0, last)).Seconds()
			}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: ns + "in_flight", Help: "Assignments the worker holds."},
			func() float64 {
				w.mu.Lock()
				defer w.mu.Unlock()
				return float64(len(w.inflight))
			}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: ns + "connected", Help: "1 while the worker is connected to NATS."},
			func() float64 {
				if w.nc.IsConnected() {
					return 1
				}
				return 0
			}),
	}
	return m
}

func (m *metrics) register(r prometheus.Registerer) error {
	for _, c := range m.collectors {
		if err := r.Register(c); err != nil {
			return err
		}
	}
	return nil
}

// Handler serves GET /_health — 200 {"status":"healthy",...} while the
// worker is connected and taking work, 503 while it is disconnected or
// draining — and GET /metrics, the Prometheus text of g (the worker's and
// the executor's metrics when both registered there).
func (w *Worker) Handler(g prometheus.Gatherer) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /_health", func(rw http.ResponseWriter, _ *http.Request) {
		h := Health{Status: "healthy", Timestamp: time.Now().UTC().Format(time.RFC3339Nano), WorkerID: w.cfg.id}
		code := http.StatusOK
		switch {
		case w.draining.Load():
			h.Status, h.Reason, code = "unhealthy", "draining", http.StatusServiceUnavailable
		case !w.nc.IsConnected():
			h.Status, h.Reason, code = "unhealthy", "disconnected", http.StatusServiceUnavailable
		}
		rw.Header().Set("Content-Type", "application/json")
		rw.WriteHeader(code)
		_ = json.NewEncoder(rw).Encode(h)
	})
	if g != nil {
		mux.Handle("GET /metrics", promhttp.HandlerFor(g, promhttp.HandlerOpts{}))
	}
	return mux
}
