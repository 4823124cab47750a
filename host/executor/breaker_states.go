package executor

// BreakerStates returns the state of each dependency's circuit breaker
// that has been used — "closed", "half-open" or "open" — keyed by the
// dependency's name. It is nil when breakers are disabled. A worker
// reports it in its heartbeats.
func (e *Executor) BreakerStates() map[string]string {
	if e.breakers == nil {
		return nil
	}
	bs := e.breakers
	bs.mu.Lock()
	defer bs.mu.Unlock()
	out := make(map[string]string, len(bs.m))
	for dep, b := range bs.m {
		out[dep] = b.cb.State().String()
	}
	return out
}
