package host

import (
	"context"
	"errors"
	"path/filepath"
	"testing"

	"github.com/blockhost/blockhost/host/engine"
	"github.com/blockhost/blockhost/internal/testwasm"
)

// A block whose snapshot is in the disk cache gets the snapshot's module
// compiled beside its own (prefetchSnapshot), and uses it; a runtime that
// has the snapshot already prefetches nothing.
func TestSnapshot_prefetched(t *testing.T) {
	wasm := testwasm.GoReactor(t, filepath.Join("testdata", "snapblock"))
	dir := t.TempDir()
	ctx := context.Background()
	for _, eng := range engine.Names() {
		t.Run(eng, func(t *testing.T) {
			load := func(rt *Runtime) *Block {
				t.Helper()
				b, err := rt.Load(ctx, "snapprefetch", wasm)
				if err != nil {
					t.Fatal(err)
				}
				if !b.UsesSnapshot() {
					t.Fatal("no snapshot")
				}
				return b
			}
			open := func() *Runtime {
				t.Helper()
				rt, err := NewRuntime(ctx, NewRuntimeConfig().WithEngine(eng).WithCacheDir(dir))
				if errors.Is(err, engine.ErrUnavailable) {
					t.Skip(err)
				}
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { rt.Close(ctx) })
				return rt
			}
			load(open()) // takes the snapshot and stores it
			compiled, taken := snapPrefetchesCompiled.Load(), snapPrefetchesTaken.Load()
			rt := open()
			load(rt)
			if c, tk := snapPrefetchesCompiled.Load()-compiled, snapPrefetchesTaken.Load()-taken; c != 1 || tk != 1 {
				t.Fatalf("a runtime loading a block whose snapshot is on disk prefetched %d modules and used %d, want 1 and 1", c, tk)
			}
			load(rt)
			if c := snapPrefetchesCompiled.Load() - compiled; c != 1 {
				t.Errorf("loading the block again prefetched again (%d in all)", c)
			}
		})
	}
}
