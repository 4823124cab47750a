//go:build cgo

package wasmtime

import (
	"runtime"

	"github.com/bytecodealliance/wasmtime-go/v39"
)

// Deleting a store restores its memory for the next instance (memory.go)
// and frees the instance: about 50 microseconds for a Go guest on a range
// used before, more on a fresh one, where every page it touches is a page
// fault. Done inside Run, that time sits between a step's end and its
// result: when many steps end at once (200 timeouts in one batch) the
// deletions queue on the CPUs and the results come late, and a single
// step waits for it while a CPU is idle. Run therefore hands its store to
// the engine's closer goroutine and returns when the run was interrupted,
// or when a CPU is left for the closer (fewer runs in flight than
// GOMAXPROCS); the closer deletes stores one at a time, and only then
// frees the run's C state and gives its place back, so the bound on
// instances alive still holds. Engine Close waits for the closer to finish
// before it closes anything the stores use.
//
// When every CPU is running a step, Run deletes its own store instead: the
// closer would only take a CPU from a step, and handing each store to
// another thread cost a batch of 8,000 hello steps at concurrency 2 about
// 9% more CPU (page faults and thread switches), and the batch of 2,000
// 11% more wall time (0.486 s against 0.430 s, medians of 20, paired).
// It does so too when the stores already waiting for the closer, with the
// runs in flight, would fill the CPUs: the closer is not keeping up, and
// every store waiting holds a memory, so a batch at concurrency 2 kept 11
// memories alive at once (the 8 waiting, the one being deleted and the 2
// running) where 3 or 4 do, each further one a fresh range whose first
// run pays its page faults (memory.go). With CPUs to spare for them, the
// stores still wait for the closer.

// retired is a store whose run has returned.
type retired struct {
	store *wasmtime.Store
	c     cRun
	// slot is true when the run holds one of Engine.slots.
	slot bool
}

// retireQueue is how many stores may wait for the closer; a run that finds
// it full deletes its store itself. It is small so that stores waiting for
// deletion hold few pool slots: with half the pool allowed (as it once
// was), a steady batch whose steps ended faster than one goroutine deleted
// them spread over hundreds of slots, most of them cold (the pool keeps 32
// unused slots warm), and fell into a slow mode at random — 2,000 hello
// steps at concurrency 2 took 0.8 s in some processes and 2.4–2.8 s in
// others. With 8, every run of that batch took 0.8–0.97 s, and 200
// interrupted sleep steps ending together still got their results within
// 19–30 ms of their deadlines (p99, quiet machine; 3–5 ms with 500).
const retireQueue = 8

// retire deletes r's store, frees its run state and releases its slot:
// through the closer when the run was interrupted or a CPU is left for it
// (above), unless the engine is closing or the queue is full; here
// otherwise.
func (e *Engine) retire(r retired, interrupted bool) {
	if deleteInline(interrupted, e.active.Load(), runtime.GOMAXPROCS(0), len(e.retiring)) {
		e.deletedInline.Add(1)
		e.delete(r)
		return
	}
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

// deleteInline is whether a run deletes its own store rather than hand it
// to the closer (above): not when it was interrupted; when the runs in
// flight besides it (others), it, and the stores waiting for the closer
// fill the procs CPUs.
func deleteInline(interrupted bool, others int64, procs, waiting int) bool {
	return !interrupted && others+1+int64(waiting) >= int64(procs)
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
		if g := e.closerGate.Load(); g != nil {
			<-*g
		}
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
