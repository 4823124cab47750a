package executor

import (
	"math"
	"math/bits"
	"math/rand/v2"
	"sync"
	"time"
)

// backoffCap is the upper bound of the n-th wait (n ≥ 1):
// min(max, initial·multiplier^(n−1)), computed so that no n, however
// large, overflows: anything at or past max is max.
func backoffCap(p *RetryPolicy, n int) time.Duration {
	if n < 1 {
		n = 1
	}
	f := float64(p.Initial) * math.Pow(p.Multiplier, float64(n-1))
	if math.IsNaN(f) || f >= float64(p.MaxInterval) {
		return p.MaxInterval
	}
	return time.Duration(f)
}

// jitter draws waits uniformly from [0, cap] ("full jitter"), from the
// configured source or the runtime's.
type jitter struct {
	mu  sync.Mutex
	src rand.Source // nil: the runtime's generator, which needs no lock
}

func newJitter(src rand.Source) *jitter { return &jitter{src: src} }

// draw scales a uniform 64-bit number to [0, upper] by a fixed-point
// multiplication: no rejection loop, so every source — a constant one in
// a test included — gives an answer, and the bias is below upper/2^64.
func (j *jitter) draw(upper time.Duration) time.Duration {
	if upper <= 0 {
		return 0
	}
	var x uint64
	if j.src == nil {
		x = rand.Uint64()
	} else {
		j.mu.Lock()
		x = j.src.Uint64()
		j.mu.Unlock()
	}
	hi, _ := bits.Mul64(x, uint64(upper)+1)
	return time.Duration(hi)
}

// wait returns the n-th wait: the dependency's Retry-After when it asked
// for one, clamped to the policy's maximum interval, else a full-jitter
// draw.
func (j *jitter) wait(p *RetryPolicy, n int, retryAfter time.Duration) time.Duration {
	if retryAfter > 0 {
		return min(retryAfter, p.MaxInterval)
	}
	return j.draw(backoffCap(p, n))
}
