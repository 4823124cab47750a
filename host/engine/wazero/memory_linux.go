//go:build linux

package wazero

import (
	"encoding/binary"
	"os"
	"runtime"
	"slices"
	"sync"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/blockhost/blockhost/host/engine/internal/sealed"
)

// image is a module's memory image (image.go): its bytes, and a sealed
// memory file holding them, which every range maps.
type image struct {
	bytes []byte
	// mu guards fd: a mapping reads it under the read lock, close takes
	// the write lock, so that no mapping can name a descriptor number
	// closed and reused for another file.
	mu sync.RWMutex
	fd int // -1 when there is no file
}

// newImage holds b in a sealed memory file; without one (an old kernel,
// no descriptors left) memories are Go slices with a copy of b.
func newImage(b []byte) *image {
	im := &image{bytes: b, fd: -1}
	if fd, err := sealed.File("blockhost-wazero-image", b); err == nil {
		im.fd = fd
	}
	return im
}

// close closes the file; ranges that map it keep what they map.
func (im *image) close() {
	im.mu.Lock()
	defer im.mu.Unlock()
	if im.fd >= 0 {
		unix.Close(im.fd)
		im.fd = -1
	}
}

// mapAt maps the file private and copy-on-write at base, over address
// space the caller reserved.
func (im *image) mapAt(base unsafe.Pointer) bool {
	im.mu.RLock()
	defer im.mu.RUnlock()
	if im.fd < 0 {
		return false
	}
	_, err := unix.MmapPtr(im.fd, 0, base, uintptr(len(im.bytes)),
		unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_FIXED)
	return err == nil
}

// memPool is a module's: its image, and the ranges its instances run in.
// Up to maxLive ranges exist at a time, so that the steps of a burst each
// run in a range of their own, their image mapped rather than copied;
// at most maxKept of them are kept free for the next runs once the burst
// is over, the others unmapped as their runs end, so that the pool does
// not leave a burst's memories resident afterwards. A run that finds the
// live cap reached gets a Go slice instead.
type memPool struct {
	image *image // nil when the module has none
	mu    sync.Mutex
	free  []*region
	// live counts ranges mapped and not yet unmapped, free or in use.
	live int
	// closed is set by close; a range given back after it is unmapped.
	closed bool
	// scout is a range in use (the first handed out while none was), whose
	// pages its run wrote tell a burst's ranges which image pages to fault
	// in writable (learn); nil when none. written has a bit per image page
	// seen written in a scout, never cleared; learned counts the passes.
	scout   *region
	written []uint64
	learned int
}

func newMemPool(img []byte) *memPool {
	if img == nil {
		return &memPool{}
	}
	return &memPool{image: newImage(img)}
}

// maxKept is how many free ranges a pool keeps between runs: enough for
// the steps of one module running at once on a machine's cores.
var maxKept = max(8, 4*runtime.GOMAXPROCS(0))

// maxLive is how many ranges a pool maps at once. Each reserves address
// space only (the memory's limit, never backed until written); 1024 of
// 4 GiB are 4 TiB, what wasmtime's pool reserves too. In a burst of 200
// interrupted Go guests, a range for every step cost 1.2 s of CPU
// against 1.3-1.6 s with 8 ranges and Go slices for the rest, which copy
// the image into fresh memory (docs/benchmarks.md).
var maxLive = 1024

// maxReset is the most a range may hold written when its run ends and
// still be kept: restoring more than that costs about what mapping and
// faulting a fresh range does, and the pool would keep it resident.
const maxReset = 16 << 20

// get returns a range of at least reserve bytes holding the image: a free
// one, else a new one; nil when the cap is reached or the kernel refuses,
// and then the memory is a Go slice.
func (p *memPool) get(reserve uint64) *region {
	reserve = (reserve + pageSize - 1) / pageSize * pageSize
	if reserve == 0 || uint64(uintptr(reserve)) != reserve {
		return nil
	}
	p.mu.Lock()
	for i := len(p.free) - 1; i >= 0; i-- {
		if r := p.free[i]; uint64(r.reserved) >= reserve {
			p.free = append(p.free[:i], p.free[i+1:]...)
			if p.scout == nil {
				p.scout = r
			}
			p.mu.Unlock()
			return r
		}
	}
	if p.closed || p.live >= maxLive {
		p.mu.Unlock()
		return nil
	}
	// A range made while as many are live as the pool keeps is one of a
	// burst's, unmapped when its run ends: it is prefaulted, the pages
	// runs are seen to write copied in first.
	burst := p.live >= maxKept
	var written []uint64
	if burst && p.image != nil {
		p.learn()
		written = slices.Clone(p.written)
	}
	p.live++
	p.mu.Unlock()
	r := newRegion(p.image, reserve, burst, written)
	p.mu.Lock()
	if r == nil {
		p.live--
	} else if p.scout == nil {
		p.scout = r
	}
	p.mu.Unlock()
	return r
}

// maxLearn is how many times a burst's new ranges read a scout's page map
// (learn) before the image's written pages are taken as known.
const maxLearn = 16

// learn adds to p.written the image pages its scout's run has written
// (present, and no longer the file's page), from the scout's page map;
// p.mu is held, so the scout stays mapped. A burst learns from a range in
// use because it has none given back yet to learn from, while its first
// memories have long started.
func (p *memPool) learn() {
	if p.scout == nil || p.learned >= maxLearn || p.closed {
		return
	}
	p.learned++
	pages := len(p.image.bytes) / hostPage
	if p.written == nil {
		p.written = make([]uint64, (pages+63)/64)
	}
	var buf []byte
	entries, ok := pageMap(p.scout.base, pages, &buf)
	if !ok {
		return
	}
	for i := range pages {
		if written(entries, i) {
			p.written[i/64] |= 1 << (i % 64)
		}
	}
}

// put resets r and keeps it for the next run, or unmaps it when the pool
// keeps maxKept free ranges already, is closed, r was prefaulted for a
// burst, or r cannot be reset.
func (p *memPool) put(r *region) {
	r.a = nil
	p.mu.Lock()
	if p.scout == r {
		p.scout = nil // before the range is reset or unmapped
	}
	keep := !p.closed && len(p.free) < maxKept && r.prefaultEnd == 0
	p.mu.Unlock()
	ok := keep && r.reset(p.image)
	p.mu.Lock()
	if ok && !p.closed && len(p.free) < maxKept {
		p.free = append(p.free, r)
		p.mu.Unlock()
		return
	}
	p.live--
	p.mu.Unlock()
	r.unmap()
}

// close unmaps the free ranges and closes the image; ranges in use are
// unmapped when their runs end.
func (p *memPool) close() {
	p.mu.Lock()
	free := p.free
	p.free, p.closed = nil, true
	p.live -= len(free)
	p.mu.Unlock()
	for _, r := range free {
		r.unmap()
	}
	if p.image != nil {
		p.image.close()
	}
}

// region is a linear memory in address space reserved outside the Go
// heap: accessible up to usable bytes, the rest reserved without access.
type region struct {
	a        *allocator // the run using it
	base     unsafe.Pointer
	reserved uintptr
	usable   uintptr
	// prefaultEnd is where prefaulting stops: 0 for a range that is not
	// prefaulted (prefault).
	prefaultEnd uintptr
	// entries is reset's buffer for page map entries.
	entries []byte
}

// newRegion reserves reserve bytes (the most the memory may grow to) and
// maps im at their start; nil when the kernel refuses either. A range for
// a burst is prefaulted, the image pages written names (a bit a page)
// copied in first.
func newRegion(im *image, reserve uint64, burst bool, written []uint64) *region {
	base, err := unix.MmapPtr(-1, 0, nil, uintptr(reserve), unix.PROT_NONE,
		unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_NORESERVE)
	if err != nil {
		return nil
	}
	r := &region{base: base, reserved: uintptr(reserve)}
	if im != nil {
		if uint64(len(im.bytes)) > reserve || !im.mapAt(base) {
			r.unmap()
			return nil
		}
		r.usable = uintptr(len(im.bytes))
		if burst {
			// The pages runs are known to write are copied in now: mapped
			// read-only by the populate below, each would be copied at the
			// guest's first write, a fault that must also flush the page
			// from every CPU the process runs on (about 50 us on a virtual
			// machine). A page wrongly guessed costs a copy of its own
			// bytes; the guest sees the same either way. The rest of the
			// image is mapped now, read-only until written, in one call
			// rather than a fault per 64 KiB the run reads.
			mem := unsafe.Slice((*byte)(base), r.usable)
			forRuns(written, len(mem)/hostPage, func(first, n int) {
				unix.Madvise(mem[first*hostPage:(first+n)*hostPage], unix.MADV_POPULATE_WRITE)
			})
			unix.Madvise(mem, unix.MADV_POPULATE_READ)
		}
	}
	if burst {
		r.prefaultEnd = r.usable + maxPrefault
	}
	return r
}

// maxPrefault is how much of a range's memory past its image is faulted
// in, writable, as it first becomes accessible: about what a Go guest's
// runtime makes accessible as it starts (1.6 MiB, of which it writes
// 0.5 MiB).
const maxPrefault = 2 << 20

// prefault faults in, writable, mem[from:to], which has just become
// accessible, of a burst's range, up to maxPrefault past the image (a
// burst's range is used once, so nothing in it was accessible before):
// growing further, the memory faults as usual, one page at a time.
// A fault taken one page at a time costs about 10 µs on a virtual
// machine, where one call populating many pages costs a fraction of that
// per page (in a burst of 200 Go guests, page faults were 30% of the CPU).
//
// Only a range the pool will not keep is prefaulted. A kept range keeps
// its pages resident from run to run (reset restores them in place), so
// it would gain nothing, and every page it holds costs a clear at each
// reset: prefaulted, a Go command step on wasmtime took twice as long.
//
// Failure (an old kernel, memory short) leaves the pages to fault as
// usual.
func (r *region) prefault(from, to uintptr) {
	if to = min(to, r.prefaultEnd); to > from {
		unix.Madvise(unsafe.Slice((*byte)(unsafe.Add(r.base, from)), to-from), unix.MADV_POPULATE_WRITE)
	}
}

// Reallocate makes the memory size bytes long, or returns nil, which
// wazero turns into a failed memory.grow, when size is over the limit.
// The bytes never move.
func (r *region) Reallocate(size uint64) []byte {
	if !r.a.allow(size) {
		return nil
	}
	need := (size + pageSize - 1) / pageSize * pageSize
	if need > uint64(r.reserved) {
		return nil
	}
	if n := uintptr(need); n > r.usable {
		more := unsafe.Slice((*byte)(unsafe.Add(r.base, r.usable)), n-r.usable)
		if err := unix.Mprotect(more, unix.PROT_READ|unix.PROT_WRITE); err != nil {
			return nil
		}
		r.prefault(r.usable, n)
		r.usable = n
	}
	return unsafe.Slice((*byte)(r.base), size)
}

// Free is wazero's; the range is given back when the run ends (memory.go).
func (r *region) Free() {}

func (r *region) unmap() {
	if r.base != nil {
		unix.MunmapPtr(r.base, r.reserved)
		r.base = nil
	}
}

// forRuns calls f for each run of set bits among the first n of bits.
func forRuns(bits []uint64, n int, f func(first, n int)) {
	run := 0
	for i := 0; i <= n; i++ {
		if i < n && i/64 < len(bits) && bits[i/64]>>(i%64)&1 != 0 {
			run++
			continue
		}
		if run > 0 {
			f(i-run, run)
			run = 0
		}
	}
}

// Page map entry bits (Documentation/admin-guide/mm/pagemap.rst).
const (
	pmPresent = 1 << 63
	pmSwapped = 1 << 62
	pmFile    = 1 << 61
)

// pagemap is opened once and kept open for the life of the process: it
// is /proc/self/pagemap of the process that opened it.
var (
	pagemapOnce sync.Once
	pagemap     *os.File
	hostPage    = os.Getpagesize()
)

func openPagemap() { pagemap, _ = os.Open("/proc/self/pagemap") }

// reset restores every page of r that may differ from im followed by
// zeros, and reports whether it could. A page not present was never
// touched, or was dropped by the kernel, and reads as the file or as
// zeros; a present page still mapped from the file was never written,
// since the first write to it makes a private copy. Every other page
// (a private copy, anonymous memory, the shared zero page, a page
// swapped out) is copied over from im or cleared.
func (r *region) reset(im *image) bool {
	if r.base == nil {
		return false
	}
	pages := int(r.usable) / hostPage
	entries, ok := pageMap(r.base, pages, &r.entries)
	if !ok {
		return false
	}
	var img []byte
	if im != nil {
		img = im.bytes
	}
	mem := unsafe.Slice((*byte)(r.base), r.usable)
	restored := 0
	for i := range pages {
		if !written(entries, i) {
			continue
		}
		if restored += hostPage; restored > maxReset {
			return false
		}
		page := mem[i*hostPage : (i+1)*hostPage]
		if off := i * hostPage; off < len(img) {
			copy(page, img[off:])
		} else {
			clear(page)
		}
	}
	return true
}

// pageMap reads the page map's entries for the pages pages from base into
// *buf (grown as needed, kept for the next call); false when it cannot.
func pageMap(base unsafe.Pointer, pages int, buf *[]byte) ([]byte, bool) {
	pagemapOnce.Do(openPagemap)
	if pagemap == nil {
		return nil, false
	}
	if cap(*buf) < 8*pages {
		*buf = make([]byte, 8*pages)
	}
	entries := (*buf)[:8*pages]
	if _, err := pagemap.ReadAt(entries, int64(uintptr(base)/uintptr(hostPage))*8); err != nil {
		return nil, false
	}
	return entries, true
}

// written reports whether the page of entry i of entries may differ from
// what its range was made with: present or swapped, and not the image
// file's own page (a page still mapped from the file was never written; a
// page never touched, or dropped, reads as the file or as zeros).
func written(entries []byte, i int) bool {
	e := binary.LittleEndian.Uint64(entries[8*i:])
	return e&(pmPresent|pmSwapped) != 0 && e&pmFile == 0
}
