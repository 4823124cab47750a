package serve

import (
	"net/http"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the server's own, named blockhost_serve_*; the executor's
// (blockhost_executor_*) are registered with the same registry.
type metrics struct {
	requests  *prometheus.CounterVec
	submitted *prometheus.CounterVec
	finished  *prometheus.CounterVec
	decisions *prometheus.CounterVec
	pruned    prometheus.Counter
}

func newMetrics(s *Server) (*metrics, error) {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "blockhost_serve_http_requests_total", Help: "HTTP requests by route and status code.",
		}, []string{"route", "code"}),
		submitted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "blockhost_serve_steps_submitted_total", Help: "Steps accepted, by block.",
		}, []string{"block"}),
		finished: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "blockhost_serve_steps_finished_total", Help: "Step results stored, by block and status.",
		}, []string{"block", "status"}),
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "blockhost_serve_approvals_total", Help: "Approvals ended, by outcome: approved, denied, expired, withdrawn.",
		}, []string{"outcome"}),
	}
	pending := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "blockhost_serve_approvals_pending", Help: "Approvals waiting for a decision in this process.",
	}, func() float64 {
		s.mu.Lock()
		defer s.mu.Unlock()
		n := 0
		for _, f := range s.flights {
			if f.timer != nil {
				n++
			}
		}
		return float64(n)
	})
	m.pruned = prometheus.NewCounter(prometheus.CounterOpts{Name: "blockhost_serve_steps_pruned_total",
		Help: "Finished steps deleted from the store after the retention period."})
	for _, c := range []prometheus.Collector{m.requests, m.submitted, m.finished, m.decisions, m.pruned, pending} {
		if err := s.registry.Register(c); err != nil {
			return nil, &ConfigError{Where: "metrics", Problem: err.Error()}
		}
	}
	return m, nil
}

type statusRecorder struct {
	http.ResponseWriter
	code int
}

func (r *statusRecorder) WriteHeader(code int) {
	if r.code == 0 {
		r.code = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Write(b []byte) (int, error) {
	if r.code == 0 {
		r.code = http.StatusOK
	}
	return r.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection.
func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

func (s *Server) instrument(route string, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := &statusRecorder{ResponseWriter: w}
		h.ServeHTTP(rec, r)
		if rec.code == 0 {
			rec.code = http.StatusOK
		}
		s.metrics.requests.WithLabelValues(route, strconv.Itoa(rec.code)).Inc()
	})
}
