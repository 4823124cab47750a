package fscap

import (
	"context"
	"errors"
	"sync/atomic"
)

// Abandoned operations. A file operation runs on a goroutine of its own
// while the caller waits for it, its operation timeout or the end of the
// step, whichever comes first. An operation the kernel holds (a FIFO with
// no writer, a hung network mount) cannot be interrupted; the caller stops
// waiting, the step ends on time, and the operation is abandoned: it runs
// on, counted, until the kernel lets it go, and then whatever it opened is
// closed and whatever it staged is removed.
var (
	abandonedNow   atomic.Int64
	abandonedTotal atomic.Int64
)

// Abandoned returns the number of file operations abandoned and still
// running, process-wide: a gauge for metrics. It falls back as the kernel
// lets each one go.
func Abandoned() int64 { return abandonedNow.Load() }

// AbandonedTotal returns the number of file operations abandoned since the
// process started: a counter for metrics.
func AbandonedTotal() int64 { return abandonedTotal.Load() }

// Caps on abandoned operations. Each one holds an operating system thread,
// so a block that keeps opening a FIFO must not be able to exhaust them:
// past a cap, new operations fail at once with ErrUnavailable until the
// kernel lets some go.
const (
	// MaxAbandoned caps abandoned operations process-wide.
	MaxAbandoned = 256
	// MaxAbandonedPerStep caps those one step may leave behind.
	MaxAbandonedPerStep = 4
)

// errOpTimeout is the cause of an operation's own timeout.
var errOpTimeout = errors.New("fscap: operation timeout")

// result carries what a call's function returned.
type result[T any] struct {
	v   T
	err error
}

// tracker remembers whether one of an operation's calls was abandoned, so
// that the operation's cleanup waits for it.
type tracker struct {
	pending chan struct{} // closed once the abandoned call has returned
}

// later runs fn in the background once every abandoned call of tr has
// returned: cleanup that must not hold up the step and must not race the
// abandoned call.
func (s *Session) later(tr *tracker, fn func()) {
	var wait chan struct{}
	if tr != nil {
		wait = tr.pending
	}
	s.bg.Add(1)
	go func() {
		defer s.bg.Done()
		if wait != nil {
			<-wait
		}
		fn()
	}()
}

// call runs fn on its own goroutine and returns what it returns, unless ctx
// ends first. Then call returns ctx's error at once and fn is abandoned:
// it is counted until it returns, and then undo (if not nil) releases the
// value it returned without error. fn must not touch guest memory: after
// abandonment the guest may be gone.
func call[T any](s *Session, ctx context.Context, tr *tracker, fn func() (T, error), undo func(T)) (T, error) {
	var zero T
	if err := ctx.Err(); err != nil {
		return zero, err
	}
	done := make(chan result[T], 1)
	s.bg.Add(1)
	go func() {
		defer s.bg.Done()
		v, err := fn()
		done <- result[T]{v, err}
	}()
	select {
	case r := <-done:
		return r.v, r.err
	case <-ctx.Done():
	}
	// If fn finished too, its result stands.
	select {
	case r := <-done:
		return r.v, r.err
	default:
	}
	abandonedNow.Add(1)
	abandonedTotal.Add(1)
	s.abandoned.Add(1)
	finished := make(chan struct{})
	if tr != nil {
		tr.pending = finished
	}
	s.bg.Add(1)
	go func() {
		defer s.bg.Done()
		r := <-done
		if r.err == nil && undo != nil {
			undo(r.v)
		}
		s.abandoned.Add(-1)
		abandonedNow.Add(-1)
		close(finished)
	}()
	return zero, ctx.Err()
}

// call0 is call for a function with no value.
func call0(s *Session, ctx context.Context, tr *tracker, fn func() error) error {
	_, err := call(s, ctx, tr, func() (struct{}, error) { return struct{}{}, fn() }, nil)
	return err
}
