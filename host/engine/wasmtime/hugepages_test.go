//go:build cgo

package wasmtime

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"unsafe"

	"github.com/blockhost/blockhost/host/engine"
	"github.com/blockhost/blockhost/host/engine/internal/residency"
)

// memoryBase runs entry of m and returns its result and the address of
// its memory, which names the pool slot the run had.
func memoryBase(t *testing.T, m engine.Module, entry string) (uint64, uintptr) {
	t.Helper()
	var base uintptr
	res, err := m.Run(context.Background(), engine.RunConfig{
		Entry: []string{entry},
		Capture: func(inst engine.Instance) error {
			if mem := inst.Memory(); len(mem) > 0 {
				base = uintptr(unsafe.Pointer(&mem[0]))
			}
			return nil
		},
	})
	if err != nil {
		t.Fatalf("%s: %v", entry, err)
	}
	var out uint64
	if len(res.Results) > 0 {
		out = res.Results[0]
	}
	return out, base
}

// TestModule_Run_noResidue: an instance in a memory (a pool slot, or a
// range of memory.go) that a previous instance of the same module used
// sees none of what that one did — not its writes, not its growth (a load
// past its own size traps), not its changes to the data segment.
func TestModule_Run_noResidue(t *testing.T) {
	e := newTestEngine(t)
	if !e.pooled && !memoryCreator {
		t.Skip("no pool on this machine")
	}
	// With the closer stopped, each run deletes its own store before it
	// returns, so the next run can take the same slot.
	e.stopCloser()
	m := compile(t, e, filepath.Join("testdata", "residue.wat"))
	reused := 0
	for range 8 {
		_, wrote := memoryBase(t, m, "write")
		code, read := memoryBase(t, m, "read")
		if code != 0 {
			t.Fatalf("a fresh instance found what the previous one left (code %d)", code)
		}
		memoryBase(t, m, "write")
		var trap *engine.Trap
		if _, err := m.Run(context.Background(), engine.RunConfig{Entry: []string{"past"}}); !errors.As(err, &trap) {
			t.Fatalf("a load past the memory's size after an instance that grew it: %v, want a trap", err)
		}
		if wrote == read {
			reused++
		}
	}
	if reused == 0 {
		t.Fatal("no run reused the slot of the run before it; the test shows nothing")
	}
}

// TestEngine_hugePages: the pool's memory reservation is advised for
// transparent huge pages where the kernel allows it, and a memory in a
// slot lies inside what was advised.
func TestEngine_hugePages(t *testing.T) {
	mode, err := os.ReadFile("/sys/kernel/mm/transparent_hugepage/enabled")
	if err != nil || !(strings.Contains(string(mode), "[madvise]") || strings.Contains(string(mode), "[always]")) {
		t.Skipf("transparent huge pages are not available on request here (%q, %v)", mode, err)
	}
	// Off by default (see hugePages); the mechanism is kept and tested.
	defer func(was bool) { hugePages = was }(hugePages)
	hugePages = true
	// The engine finds its pool as the large mapping that appeared while
	// it was created. An engine of an earlier test, released by a
	// finalizer at that moment, can leave its pool's range free just
	// before the new pool takes the very same range, which then looks
	// old: a harmless miss in a process (no huge pages), which a second
	// engine avoids here.
	var e *Engine
	for range 3 {
		if e = newTestEngine(t); !e.pooled || len(e.hugePool) > 0 {
			break
		}
		runtime.GC()
	}
	if !e.pooled {
		t.Skip("no pool on this machine")
	}
	if len(e.hugePool) == 0 {
		t.Fatal("no mapping of the pool was advised")
	}
	m := compile(t, e, filepath.Join("testdata", "residue.wat"))
	_, base := memoryBase(t, m, "read")
	inside := false
	for _, hp := range e.hugePool {
		inside = inside || (uint64(base) >= hp.lo && uint64(base) < hp.hi)
	}
	if !inside {
		t.Fatalf("memory at %#x is outside the advised mappings %x", base, e.hugePool)
	}
	if flags := vmFlags(t, uint64(base)); !strings.Contains(" "+flags+" ", " hg ") {
		t.Fatalf("the kernel does not mark the memory's mapping for huge pages (VmFlags: %s)", flags)
	}
}

// TestMemory_grownHugePages: what a memory grows into past its initial
// size starts on a 2 MiB boundary and is advised for huge pages, on a new
// range and on one kept and reused, so that the reset's and the growth's
// changes of protection are one page table entry per 2 MiB
// (bh_range_new).
func TestMemory_grownHugePages(t *testing.T) {
	if !memoryCreator {
		t.Skip("the engine does not make memories here")
	}
	mode, err := os.ReadFile("/sys/kernel/mm/transparent_hugepage/enabled")
	if err != nil || !(strings.Contains(string(mode), "[madvise]") || strings.Contains(string(mode), "[always]")) {
		t.Skipf("transparent huge pages are not available on request here (%q, %v)", mode, err)
	}
	e := newTestEngine(t)
	m := compile(t, e, filepath.Join("testdata", "grow.wat"))
	const floor, huge = 64 << 10, 2 << 20
	for run := range 3 {
		_, err := m.Run(context.Background(), engine.RunConfig{
			Entry: []string{"grow"},
			Capture: func(inst engine.Instance) error {
				mem := inst.Memory()
				if len(mem) != floor+64*floor {
					return fmt.Errorf("memory of %d bytes after growing, want %d", len(mem), floor+64*floor)
				}
				grown := uintptr(unsafe.Pointer(&mem[floor]))
				if grown%huge != 0 {
					return fmt.Errorf("run %d: the grown part starts at %#x, not on a 2 MiB boundary", run, grown)
				}
				if flags := vmFlags(t, uint64(grown)); !strings.Contains(" "+flags+" ", " hg ") {
					return fmt.Errorf("run %d: the grown part is not advised for huge pages (VmFlags: %s)", run, flags)
				}
				if flags := vmFlags(t, uint64(uintptr(unsafe.Pointer(&mem[0])))); strings.Contains(" "+flags+" ", " hg ") {
					return fmt.Errorf("run %d: the image is advised for huge pages too (VmFlags: %s)", run, flags)
				}
				return nil
			},
		})
		if err != nil {
			t.Fatal(err)
		}
	}
}

// vmFlags returns the VmFlags line of the mapping holding addr in
// /proc/self/smaps.
func vmFlags(t *testing.T, addr uint64) string {
	t.Helper()
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		t.Skipf("no /proc/self/smaps: %v", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	in := false
	for sc.Scan() {
		line := sc.Text()
		if span, _, ok := strings.Cut(line, " "); ok {
			if lo, hi, ok := strings.Cut(span, "-"); ok {
				l, err1 := strconv.ParseUint(lo, 16, 64)
				h, err2 := strconv.ParseUint(hi, 16, 64)
				if err1 == nil && err2 == nil {
					in = addr >= l && addr < h
					continue
				}
			}
		}
		if in && strings.HasPrefix(line, "VmFlags:") {
			return strings.TrimSpace(strings.TrimPrefix(line, "VmFlags:"))
		}
	}
	t.Fatalf("no mapping holds %#x", addr)
	return ""
}

// TestModule_Run_imageBesideGCHeap: a module for which wasmtime makes a
// memory of its own first (the GC heap an externref table needs) still
// starts with its data in memory 0, run after run.
func TestModule_Run_imageBesideGCHeap(t *testing.T) {
	e := newTestEngine(t)
	m := compile(t, e, filepath.Join("testdata", "gcheap.wat"))
	for range 3 {
		if got, _ := memoryBase(t, m, "read"); got != 'b' {
			t.Fatalf("memory 0 starts with %d at the data segment, want %d", got, 'b')
		}
	}
}

// TestMemory_pageSize: the memory's reset reads the page map by the
// kernel's page size, whatever it is.
func TestMemory_pageSize(t *testing.T) {
	if !memoryCreator {
		t.Skip("the engine does not make memories here")
	}
	if got, want := pageSizeC(), os.Getpagesize(); got != want {
		t.Errorf("memory.c pages of %d bytes, the kernel's are %d", got, want)
	}
}

// TestMemory_prefault: what a fresh range holds resident before the guest
// touches anything. A range the module may keep holds nothing; a range
// made for a burst (as many memories alive as it keeps ranges) has its image's
// pages mapped from its file (not copied) and the first 2 MiB past the
// image faulted in, zero, the rest of the memory, initial or grown, not at
// all, and is not kept after its run.
func TestMemory_prefault(t *testing.T) {
	if !memoryCreator {
		t.Skip("the engine does not make memories here")
	}
	for _, burst := range []bool{false, true} {
		t.Run(fmt.Sprintf("burst=%v", burst), func(t *testing.T) {
			e := newTestEngine(t)
			e.stopCloser()
			m := compile(t, e, filepath.Join("testdata", "prefault.wat"))
			mapped, prefaulted := 0, 0
			defer tuneMemoryC(maxKeptRanges, maxKeptRanges)
			if burst {
				tuneMemoryC(maxKeptRanges, 0)
				mapped, prefaulted = 65536, 2<<20
			}
			// run checks that the memory is fresh, its first mapped bytes
			// mapped and prefaulted bytes past the image faulted in (no
			// check when prefaulted < 0), and returns its address.
			run := func(mapped, prefaulted int) uintptr {
				var base uintptr
				_, err := m.Run(context.Background(), engine.RunConfig{
					Entry: []string{"grow"},
					Capture: func(inst engine.Instance) error {
						// The range is taken: the next is not a burst's.
						tuneMemoryC(maxKeptRanges, maxKeptRanges)
						mem := inst.Memory()
						if len(mem) != 128*65536 {
							return fmt.Errorf("memory of %#x bytes, want it grown to 8 MiB", len(mem))
						}
						base = uintptr(unsafe.Pointer(&mem[0]))
						if prefaulted < 0 {
							return nil
						}
						return residency.CheckFresh(mem, 65536, mapped, prefaulted)
					},
				})
				if errors.Is(err, residency.ErrUnavailable) {
					t.Skip(err)
				}
				if err != nil {
					t.Fatal(err)
				}
				return base
			}
			first := run(mapped, prefaulted)
			// With the closer stopped, the run deleted its store: a range
			// kept is the next run's, at the same address. After a burst's
			// run, the next run's range is a fresh one, not a burst's: the
			// burst's range kept would still hold its prefaulted pages (an
			// address alone proves nothing there: the kernel may map a new
			// range where one was unmapped).
			if burst {
				run(0, 0)
			} else if run(-1, -1) != first {
				t.Fatal("the next run did not reuse the range")
			}
		})
	}
}

// TestMemory_prefaultLearnsWrites: a burst's range copies in, up front,
// the image pages that a memory of the same module in use has written,
// and maps the rest from the image's file: a page the guest writes is not
// first mapped read-only and then copied at a fault.
func TestMemory_prefaultLearnsWrites(t *testing.T) {
	if !memoryCreator {
		t.Skip("the engine does not make memories here")
	}
	if os.Getpagesize() != 4096 {
		t.Skip("the test module writes to the third 4 KiB page")
	}
	e := newTestEngine(t)
	m := compile(t, e, filepath.Join("testdata", "learn.wat"))
	defer tuneMemoryC(maxKeptRanges, maxKeptRanges)
	var pages []residency.Page
	_, err := m.Run(context.Background(), engine.RunConfig{
		Entry: []string{"write"},
		Capture: func(engine.Instance) error {
			// This memory, in use, wrote the image's third page; the next
			// memory is a burst's.
			tuneMemoryC(maxKeptRanges, 0)
			errc := make(chan error, 1)
			go func() {
				_, err := m.Run(context.Background(), engine.RunConfig{
					Entry: []string{"read"},
					Capture: func(inst engine.Instance) error {
						mem := inst.Memory()
						var err error
						pages, err = residency.Pages(uintptr(unsafe.Pointer(&mem[0])), 16)
						return err
					},
				})
				errc <- err
			}()
			return <-errc
		},
	})
	if errors.Is(err, residency.ErrUnavailable) {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	if err := residency.CheckImage(pages, 2); err != nil {
		t.Errorf("the burst's memory: %v", err)
	}
}

// TestMemory_prefaultNotForReturnedRuns: memories alive beyond the steps
// the cores run, but no more than returned runs' stores may hold while
// they wait for the closer, do not make a burst: a steady batch whose
// stores wait a moment must still get ranges it can keep, not prefaulted
// ones it must unmap.
func TestMemory_prefaultNotForReturnedRuns(t *testing.T) {
	if !memoryCreator {
		t.Skip("the engine does not make memories here")
	}
	e := newTestEngine(t)
	m := compile(t, e, filepath.Join("testdata", "prefault.wat"))
	n := max(8, 4*runtime.GOMAXPROCS(0)) + retireQueue
	var arrived, done sync.WaitGroup
	arrived.Add(n)
	errs := make(chan error, n)
	for range n {
		done.Go(func() {
			_, err := m.Run(context.Background(), engine.RunConfig{
				Entry: []string{"grow"},
				Capture: func(inst engine.Instance) error {
					// Every run holds its memory until all have one.
					arrived.Done()
					arrived.Wait()
					return residency.CheckFresh(inst.Memory(), 65536, 0, 0)
				},
			})
			errs <- err
		})
	}
	done.Wait()
	close(errs)
	for err := range errs {
		if errors.Is(err, residency.ErrUnavailable) {
			t.Skip(err)
		}
		if err != nil {
			t.Fatalf("with %d memories alive: %v", n, err)
		}
	}
}
