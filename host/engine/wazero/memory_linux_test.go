//go:build linux

package wazero

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/blockhost/blockhost/host/engine"
	"github.com/blockhost/blockhost/host/engine/internal/residency"
)

// checkRangesUsed checks that runs used mapped ranges, and reused them,
// exactly when mapped: a test of resetting that ran on Go slices alone
// would prove nothing.
func checkRangesUsed(t *testing.T, p *memPool, mapped bool) {
	t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	if mapped && (p.live == 0 || len(p.free) != p.live) {
		t.Errorf("%d ranges mapped, %d free; want some, all free", p.live, len(p.free))
	}
	if !mapped && p.live != 0 {
		t.Errorf("%d ranges mapped; want none", p.live)
	}
}

// TestMemPool_cap checks that a pool maps at most maxLive ranges (the
// next run gets a Go slice), keeps at most maxKept of those given back
// and unmaps the rest, reuses those it kept, and unmaps a range given back
// after it closed.
func TestMemPool_cap(t *testing.T) {
	defer func(live, kept int) { maxLive, maxKept = live, kept }(maxLive, maxKept)
	maxLive, maxKept = 6, 2
	p := newMemPool(make([]byte, pageSize))
	var held []*region
	for range maxLive {
		r := p.get(4 * pageSize)
		if r == nil {
			t.Fatalf("range %d refused", len(held))
		}
		held = append(held, r)
	}
	if r := p.get(4 * pageSize); r != nil {
		t.Fatal("a range past the cap")
	}
	for i, r := range held[:4] {
		p.put(r)
		if kept := i < maxKept; (r.base != nil) != kept {
			t.Fatalf("range %d given back: mapped %v, want %v (%d kept at most)", i, r.base != nil, kept, maxKept)
		}
	}
	if p.live != 4 || len(p.free) != maxKept {
		t.Fatalf("%d ranges mapped, %d free; want 4, %d", p.live, len(p.free), maxKept)
	}
	if r := p.get(4 * pageSize); r != held[1] {
		t.Fatal("a range given back was not reused")
	}
	held = append(held[1:2:2], held[4:]...)
	p.close()
	for _, r := range held {
		p.put(r)
		if r.base != nil {
			t.Fatal("a range given back after close is still mapped")
		}
	}
	if p.live != 0 || len(p.free) != 0 {
		t.Errorf("after close: %d ranges mapped, %d free", p.live, len(p.free))
	}
	if r := p.get(4 * pageSize); r != nil {
		t.Error("a range from a closed pool")
	}
}

// TestImage_sealed checks that nothing can write to an image's file.
func TestImage_sealed(t *testing.T) {
	im := newImage(make([]byte, pageSize))
	defer im.close()
	if im.fd < 0 {
		t.Fatal("no memory file")
	}
	if _, err := unix.Pwrite(im.fd, []byte("x"), 0); !errors.Is(err, unix.EPERM) {
		t.Errorf("write to the image's file: %v, want EPERM", err)
	}
	if err := unix.Ftruncate(im.fd, 2*pageSize); !errors.Is(err, unix.EPERM) {
		t.Errorf("grow the image's file: %v, want EPERM", err)
	}
}

// TestMemory_prefault checks what a fresh range holds resident before the
// guest touches anything. A range the pool may keep holds nothing; a range
// made for a burst (more live than the pool keeps) has its image's pages
// mapped from its file (not copied) and the first maxPrefault bytes past
// the image faulted in, zero, the rest of the memory, initial or grown,
// not at all, and is unmapped when its run ends.
func TestMemory_prefault(t *testing.T) {
	for _, burst := range []bool{false, true} {
		t.Run(fmt.Sprintf("burst=%v", burst), func(t *testing.T) {
			kept, mapped, prefaulted := maxKept, 0, 0
			defer func() { maxKept = kept }()
			if burst {
				maxKept, mapped, prefaulted = 0, 65536, maxPrefault
			}
			m, err := newTestEngine(t).Compile(context.Background(), memoryFixture(t, "prefault"))
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close(context.Background())
			_, err = m.Run(context.Background(), engine.RunConfig{
				Entry: []string{"grow"},
				Capture: func(inst engine.Instance) error {
					// The range is taken: the pool could keep it again.
					maxKept = kept
					if mem := inst.Memory(); len(mem) != 128*65536 {
						return fmt.Errorf("memory of %#x bytes, want it grown to 8 MiB", len(mem))
					}
					return residency.CheckFresh(inst.Memory(), 65536, mapped, prefaulted)
				},
			})
			if errors.Is(err, residency.ErrUnavailable) {
				t.Skip(err)
			}
			if err != nil {
				t.Fatal(err)
			}
			p := m.(*module).mem
			p.mu.Lock()
			defer p.mu.Unlock()
			if kept := len(p.free) == 1 && p.live == 1; kept == burst {
				t.Fatalf("after the run, %d ranges live, %d free; want the range kept: %v", p.live, len(p.free), !burst)
			}
		})
	}
}

// TestMemory_prefaultLearnsWrites: a burst's range copies in, up front,
// the image pages that a memory of the same module in use has written,
// and maps the rest from the image's file: a page the guest writes is not
// first mapped read-only and then copied at a fault.
func TestMemory_prefaultLearnsWrites(t *testing.T) {
	if hostPage != 4096 {
		t.Skip("the test module writes to the third 4 KiB page")
	}
	kept := maxKept
	defer func() { maxKept = kept }()
	m, err := newTestEngine(t).Compile(context.Background(), memoryFixture(t, "learn"))
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close(context.Background())
	var pages []residency.Page
	_, err = m.Run(context.Background(), engine.RunConfig{
		Entry: []string{"write"},
		Capture: func(engine.Instance) error {
			// This memory, in use, wrote the image's third page; the next
			// memory is a burst's.
			maxKept = 0
			_, err := m.Run(context.Background(), engine.RunConfig{
				Entry: []string{"read"},
				Capture: func(inst engine.Instance) error {
					var err error
					pages, err = residency.Pages(uintptr(unsafe.Pointer(&inst.Memory()[0])), 16)
					return err
				},
			})
			return err
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
