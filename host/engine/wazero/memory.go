package wazero

import "github.com/tetratelabs/wazero/experimental"

// Linear memory. Every instance's memory comes from its run's allocator,
// which enforces the run's memory limit (a grow past it fails, and the
// refusal is recorded) and starts the memory as the module's image
// (image.go) when it has one.
//
// On Linux a memory is a range of address space outside the Go heap,
// reserved up to the limit (memory_linux.go): the image is mapped into it
// private and copy-on-write from a sealed memory file, the rest is
// anonymous memory, and growing makes more of the range accessible. When
// the run ends the range is put back in its module's pool after the pages
// the run may have changed are restored, found through /proc/self/pagemap:
// a page still mapped from the file was never written. The next run
// starts from a range whose pages are already mapped, and the cost of a
// step is the pages it writes, not the memory's size. Elsewhere, or when
// the kernel refuses, a memory is a Go slice holding a copy of the image.
//
// Guarantees, on either path:
//   - a memory handed to an instance holds exactly the image followed by
//     zeros, whatever earlier runs wrote;
//   - no memory grows past the limit;
//   - a range is reset, pooled or unmapped only when the run that
//     allocated it ends (allocator.release), never earlier: wazero frees a
//     memory when its instance closes, which Runtime.Close may do from
//     another goroutine while a guest runs, so Free does nothing. Run
//     returns after its guest has stopped, and host functions never keep
//     guest memory past their call (engine.Memory).

// mapMemories is false only in benchmarks that compare Go slices with
// mapped ranges.
var mapMemories = true

// allocator is one run's: wazero calls it from the goroutine running the
// guest only.
type allocator struct {
	limit uint64
	peak  uint64
	hit   bool
	// pool is the module's.
	pool *memPool
	// regions are the mapped memories to give back when the run ends.
	regions []*region
}

func (a *allocator) Allocate(capacity, maxBytes uint64) experimental.LinearMemory {
	if mapMemories {
		if r := a.pool.get(min(maxBytes, a.limit)); r != nil {
			r.a = a
			a.regions = append(a.regions, r)
			return r
		}
	}
	return &heapMemory{a: a, capHint: min(capacity, a.limit)}
}

// release gives every mapped memory of the run back to the pool. Run calls
// it last, when no guest code of the run can run any more.
func (a *allocator) release() {
	for _, r := range a.regions {
		a.pool.put(r)
	}
	a.regions = nil
}

// allow records a request for size bytes and reports whether the limit
// allows it.
func (a *allocator) allow(size uint64) bool {
	if size > a.limit {
		a.hit = true
		return false
	}
	a.peak = max(a.peak, size)
	return true
}

// heapMemory backs linear memory with a Go slice.
type heapMemory struct {
	a       *allocator
	buf     []byte
	capHint uint64
	// started is set once the image, if any, was copied in.
	started bool
}

// Reallocate grows the memory to size bytes, or returns nil, which wazero
// turns into a failed memory.grow, when size is over the limit.
func (l *heapMemory) Reallocate(size uint64) []byte {
	if !l.a.allow(size) {
		return nil
	}
	if l.started && size <= uint64(cap(l.buf)) {
		l.buf = l.buf[:size]
		return l.buf
	}
	// Grow by a quarter, within the limit, so that a guest growing page by
	// page does not copy its whole memory each time, yet a module that grows
	// once or twice (most do) does not pay for zeroing and collecting twice
	// the memory it uses: doubling cost a Go hello block 11% per step.
	nb := make([]byte, size, max(size, l.capHint, min(size+size/4, l.a.limit)))
	if l.started {
		copy(nb, l.buf)
	} else if im := l.a.pool.image; im != nil {
		// wazero's first request is the memory's minimum size, which the
		// image never exceeds (datamerge.SplitImage).
		copy(nb, im.bytes)
	}
	l.started = true
	l.buf = nb
	return nb
}

func (l *heapMemory) Free() { l.buf = nil }
