package host

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/blockhost/blockhost/abi"
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
			want := load(open()) // takes the snapshot and stores it
			compiled, taken, borrowed := snapPrefetchesCompiled.Load(), snapPrefetchesTaken.Load(), snapPrefetchesBorrowed.Load()
			compiles := lazyCompiles.Load()
			rt := open()
			b := load(rt)
			if c, tk := snapPrefetchesCompiled.Load()-compiled, snapPrefetchesTaken.Load()-taken; c != 1 || tk != 1 {
				t.Fatalf("a runtime loading a block whose snapshot is on disk prefetched %d modules and used %d, want 1 and 1", c, tk)
			}
			// An engine that keeps nothing of a module it compiles gets the
			// snapshot's module in memory freed once compiled.
			_, borrows := rt.eng.(engine.Borrower)
			if n := snapPrefetchesBorrowed.Load() - borrowed; n != 0 && !borrows || n != 1 && borrows {
				t.Errorf("%d modules prefetched into borrowed memory (the engine borrows: %v)", n, borrows)
			}
			again := load(rt)
			if c := snapPrefetchesCompiled.Load() - compiled; c != 1 {
				t.Errorf("loading the block again prefetched again (%d in all)", c)
			}
			if again.mod != b.mod {
				t.Errorf("loading the block again gave it another module (%T), not the first Load's (%T)", again.mod, b.mod)
			}

			// The block's own module is compiled only when a step needs it,
			// once, and until then the block looks exactly as if it had
			// been compiled.
			if _, lazy := b.mod.(*lazyModule); !lazy {
				t.Fatalf("the block's module was compiled when it was loaded (%T)", b.mod)
			}
			shape := func(b *Block) string { // exports sorted: wazero lists them in map order
				exports := slices.SortedFunc(slices.Values(b.Exports()), func(a, b engine.Export) int { return strings.Compare(a.Name, b.Name) })
				return fmt.Sprintf("%+v\n%+v", b.Imports(), exports)
			}
			if got, w := shape(b), shape(want); got != w {
				t.Errorf("imports and exports before compiling:\n%s\nwant\n%s", got, w)
			}
			gotPages, gotOK := b.mod.MinMemoryPages()
			if wantPages, wantOK := want.mod.MinMemoryPages(); gotPages != wantPages || gotOK != wantOK {
				t.Errorf("memory of %d pages (%v), want %d (%v)", gotPages, gotOK, wantPages, wantOK)
			}
			run := func(step Step) {
				t.Helper()
				if res := b.Run(ctx, step); res.Status != abi.StatusSuccess {
					t.Fatalf("step: %s %+v", res.Status, res.Error)
				}
			}
			run(Step{Input: []byte(`{}`)})
			if n := lazyCompiles.Load() - compiles; n != 0 {
				t.Fatalf("a step from the snapshot compiled the block's own module (%d)", n)
			}
			env := Step{Input: []byte(`{}`), Grants: Grants{Env: map[string]string{"X": "1"}}}
			run(env)
			run(env)
			if n := lazyCompiles.Load() - compiles; n != 1 {
				t.Errorf("two steps that cannot start from the snapshot compiled the block's module %d times, want once", n)
			}
		})
	}
}
