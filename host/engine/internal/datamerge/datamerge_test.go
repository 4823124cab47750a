package datamerge_test

import (
	"path/filepath"
	"runtime"
	"testing"

	"github.com/blockhost/blockhost/host/engine/internal/datamerge"
	"github.com/blockhost/blockhost/internal/testwasm"
)

// TestMerge_farSegment: segments far apart are not joined, and merging
// the others costs memory for what it writes, not for the distance: a
// module whose segments lie gigabytes (or, in a 64-bit memory, 2^62
// bytes) apart is merged as any other, without allocating for the gap.
func TestMerge_farSegment(t *testing.T) {
	for _, name := range []string{"far", "far64"} {
		t.Run(name, func(t *testing.T) {
			wasm := testwasm.WAT(t, filepath.Join("testdata", name+".wat"))
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			out, err := datamerge.Merge(wasm, 64)
			runtime.ReadMemStats(&after)
			if err != nil {
				t.Fatal(err)
			}
			if len(out) >= len(wasm) {
				t.Fatalf("merged module of %d bytes, the original %d: the adjacent segments were not merged", len(out), len(wasm))
			}
			if n := after.TotalAlloc - before.TotalAlloc; n > 1<<20 {
				t.Fatalf("merging allocated %d bytes", n)
			}
		})
	}
}
