package wazero

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"testing"

	"github.com/blockhost/blockhost/host/engine"
	"github.com/blockhost/blockhost/host/engine/internal/datamerge"
	"github.com/blockhost/blockhost/internal/testwasm"
)

func memoryFixture(t testing.TB, name string) []byte {
	t.Helper()
	return testwasm.WAT(t, filepath.Join("testdata", "memory", name+".wat"))
}

// startingMemory runs "size" on m and returns the memory the instance
// started with, and its size in pages.
func startingMemory(t *testing.T, m engine.Module, limit uint64) ([]byte, uint64) {
	t.Helper()
	var mem []byte
	res, err := m.Run(context.Background(), engine.RunConfig{
		Entry: []string{"size"}, MemoryLimit: limit,
		Capture: func(inst engine.Instance) error {
			mem = bytes.Clone(inst.Memory())
			return nil
		},
	})
	if err != nil || len(res.Results) != 1 {
		t.Fatalf("size: %+v, %v", res, err)
	}
	return mem, res.Results[0]
}

// TestMemory_freshEachRun checks that every instance starts with the
// memory its module's data segments describe, whatever an instance before
// it wrote: a guest fills its whole memory, grown, with 0xab, and the next
// instance reads back the image and zeros, at the initial size. Several
// runs at once use several ranges; both kinds of memory are checked.
func TestMemory_freshEachRun(t *testing.T) {
	for _, mapped := range []bool{true, false} {
		for _, name := range []string{"reset", "nodata"} {
			t.Run(fmt.Sprintf("%s/mapped=%v", name, mapped), func(t *testing.T) {
				defer func(old bool) { mapMemories = old }(mapMemories)
				mapMemories = mapped
				wasm := memoryFixture(t, name)
				want, err := initialMemory(t, wasm)
				if err != nil {
					t.Fatal(err)
				}
				if name == "reset" && bytes.Count(want, []byte{0}) == len(want) {
					t.Fatal("the fixture's memory is all zeros")
				}
				e := newTestEngine(t)
				m, err := e.Compile(context.Background(), wasm)
				if err != nil {
					t.Fatal(err)
				}
				defer m.Close(context.Background())
				if got := m.(*module).mem.image != nil; got != (name == "reset") {
					t.Fatalf("module has an image: %v", got)
				}
				var wg sync.WaitGroup
				for g := range 4 {
					wg.Go(func() {
						for i := range 5 {
							res, err := m.Run(context.Background(), engine.RunConfig{Entry: []string{"dirty"}})
							if err != nil || len(res.Results) != 1 || res.Results[0] != 6 {
								t.Errorf("goroutine %d, run %d: dirty: %+v, %v", g, i, res, err)
								return
							}
						}
					})
				}
				wg.Wait()
				for i := range 3 {
					got, pages := startingMemory(t, m, 0)
					if pages != 4 || !bytes.Equal(got, want) {
						t.Fatalf("run %d after the dirty ones: %d pages, memory equal to the module's initial memory: %v",
							i, pages, bytes.Equal(got, want))
					}
					if _, err := m.Run(context.Background(), engine.RunConfig{Entry: []string{"dirty"}}); err != nil {
						t.Fatal(err)
					}
				}
				checkRangesUsed(t, m.(*module).mem, mapped)
			})
		}
	}
}

// TestMemory_limit checks the memory limit on both kinds of memory: a
// grow past it fails in the guest, and the run reports the limit hit.
func TestMemory_limit(t *testing.T) {
	for _, mapped := range []bool{true, false} {
		t.Run(fmt.Sprintf("mapped=%v", mapped), func(t *testing.T) {
			defer func(old bool) { mapMemories = old }(mapMemories)
			mapMemories = mapped
			e := newTestEngine(t)
			m, err := e.Compile(context.Background(), memoryFixture(t, "reset"))
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close(context.Background())
			res, err := m.Run(context.Background(), engine.RunConfig{Entry: []string{"dirty"}, MemoryLimit: 5 * pageSize})
			if err != nil || res.Results[0] != 4 || !res.MemoryLimitHit || res.PeakMemory != 4*pageSize {
				t.Errorf("grow past the limit: %+v, %v; want memory.size 4 and the limit hit", res, err)
			}
			res, err = m.Run(context.Background(), engine.RunConfig{Entry: []string{"dirty"}, MemoryLimit: 6 * pageSize})
			if err != nil || res.Results[0] != 6 || res.MemoryLimitHit || res.PeakMemory != 6*pageSize {
				t.Errorf("grow to the limit: %+v, %v; want memory.size 6", res, err)
			}
		})
	}
}

// TestSplitImage checks the image against what wazero's instantiation of
// the unchanged module writes, and that the module left to wazero writes
// nothing; modules whose layout is not known before instantiation are
// left unchanged.
func TestSplitImage(t *testing.T) {
	for _, name := range []string{"merge", "overlap", "drop"} {
		t.Run(name, func(t *testing.T) {
			in := testwasm.WAT(t, filepath.Join("testdata", "datamerge", name+".wat"))
			out, img := datamerge.SplitImage(in)
			if img == nil || len(img)%pageSize != 0 {
				t.Fatalf("image of %d bytes", len(img))
			}
			if testDataSegments(t, out) != testDataSegments(t, in) {
				t.Error("the number of data segments changed")
			}
			want, err := initialMemory(t, in)
			if err != nil {
				t.Fatal(err)
			}
			got := append(bytes.Clone(img), make([]byte, len(want)-len(img))...)
			if !bytes.Equal(got, want) {
				t.Error("the image differs from the memory instantiation writes")
			}
			left, err := initialMemory(t, out)
			if err != nil {
				t.Fatal(err)
			}
			if bytes.Count(left, []byte{0}) != len(left) {
				t.Error("the module without its image still writes memory")
			}
		})
	}
	for _, name := range []string{"outofbounds", "passive", "global", "extconst", "imported", "multimem"} {
		t.Run(name, func(t *testing.T) {
			in := testwasm.WAT(t, filepath.Join("testdata", "datamerge", name+".wat"))
			if out, img := datamerge.SplitImage(in); img != nil || !bytes.Equal(out, in) {
				t.Errorf("changed: image of %d bytes", len(img))
			}
		})
	}
}
