//go:build cgo

package wasmtime

import "github.com/bytecodealliance/wasmtime-go/v39"

// Deleting a store returns its instance's memory slot to the pool, which
// zeroes the slot's resident pages: a few hundred microseconds for a Go
// guest on a warm slot, milliseconds on a fresh one, where every page it
// touches is a page fault. Done inside Run, that time sat between a step's
// deadline and its result, and when many steps ended at once (200 timeouts
// in one batch) the deletions queued on the CPUs and the results came
// seconds late. Run therefore hands its store to the engine's closer
// goroutine and returns; the closer deletes stores one at a time, on at
// most one CPU, and only then frees the run's C state and gives its pool
// slot back, so the pool still bounds the instances alive at once. Engine
// Close waits for the closer to finish before it closes anything the
// stores use.

// retired is a store whose run has returned.
type retired struct {
	store *wasmtime.Store
	c     cRun
	// slot is true when the run holds one of Engine.slots.
	slot bool
}

// retireQueue is how many stores may wait for the closer; a run that finds
// it full deletes its store itself. It is half of maxRuns so that stores
// waiting for deletion never hold every pool slot: when steps end faster
// than one goroutine deletes them, runs go on (deleting their own stores)
// instead of waiting on the closer for a slot.
const retireQueue = maxRuns / 2

// retire deletes r's store, frees its run state and releases its slot,
// through the closer unless the engine is closing or the queue is full.
func (e *Engine) retire(r retired) {
	e.retireMu.Lock()
	if !e.retireClosed {
		select {
		case e.retiring <- r:
			e.retireMu.Unlock()
			return
		default:
		}
	}
	e.retireMu.Unlock()
	e.delete(r)
}

func (e *Engine) delete(r retired) {
	r.store.Close()
	r.c.free()
	if r.slot {
		<-e.slots
	}
}

// closer deletes retired stores until the queue is closed and drained.
func (e *Engine) closer() {
	defer e.closers.Done()
	for r := range e.retiring {
		e.delete(r)
	}
}

// stopCloser closes the queue and waits until every retired store is
// deleted.
func (e *Engine) stopCloser() {
	e.retireMu.Lock()
	if !e.retireClosed {
		e.retireClosed = true
		close(e.retiring)
	}
	e.retireMu.Unlock()
	e.closers.Wait()
}
