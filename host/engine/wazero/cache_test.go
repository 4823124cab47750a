package wazero

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"

	"github.com/blockhost/blockhost/host/engine"
	"github.com/blockhost/blockhost/host/engine/internal/diskcache"
	"github.com/blockhost/blockhost/internal/testwasm"
)

// The damages every cache can suffer are tested on both engines by
// host/cache_test.go; these tests cover what is particular to wazero: the
// staging directory wazero is shown, and an entry whose checks pass but
// that wazero cannot load.

func newCachedEngine(t *testing.T, dir string) (*Engine, *bytes.Buffer) {
	t.Helper()
	var logs bytes.Buffer
	logger := hclog.New(&hclog.LoggerOptions{Output: &logs, Level: hclog.Warn})
	e, err := New(context.Background(), engine.Config{CacheDir: dir, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close(context.Background()) })
	return e.(*Engine), &logs
}

// trapRuns compiles trap.wat on e and checks that it traps.
func trapRuns(t *testing.T, e *Engine, wasm []byte) {
	t.Helper()
	m, err := e.Compile(context.Background(), wasm)
	if err != nil {
		t.Fatal(err)
	}
	_, err = m.Run(context.Background(), engine.RunConfig{Entry: []string{"_start"}})
	if _, ok := err.(*engine.Trap); !ok {
		t.Fatalf("run: %v, want a trap", err)
	}
}

func trapWasm(t *testing.T) []byte {
	return testwasm.WAT(t, filepath.Join(testwasm.ModuleRoot(t), "host", "testdata", "trap.wat"))
}

func counts(e *Engine) [4]int64 {
	c := e.disk.entries
	return [4]int64{c.Hits.Load(), c.Misses.Load(), c.Rejected.Load(), c.WriteErrors.Load()}
}

// stagingEmpty checks that nothing is left where wazero looks.
func stagingEmpty(t *testing.T, e *Engine) {
	t.Helper()
	des, err := os.ReadDir(e.disk.files)
	if err != nil || len(des) != 0 {
		t.Errorf("staging directory holds %v (%v)", des, err)
	}
}

func TestDiskCache_hit(t *testing.T) {
	dir, wasm := t.TempDir(), trapWasm(t)
	first, _ := newCachedEngine(t, dir)
	trapRuns(t, first, wasm)
	if got := counts(first); got != [4]int64{0, 1, 0, 0} {
		t.Fatalf("first engine: hits, misses, rejected, write errors = %v", got)
	}
	stagingEmpty(t, first)
	second, logs := newCachedEngine(t, dir)
	trapRuns(t, second, wasm)
	if got := counts(second); got != [4]int64{1, 0, 0, 0} {
		t.Fatalf("second engine: hits, misses, rejected, write errors = %v", got)
	}
	stagingEmpty(t, second)
	if logs.Len() != 0 {
		t.Errorf("warnings: %s", logs.String())
	}
}

// TestDiskCache_wazeroRefuses: an entry that passes every check but that
// wazero cannot load (written under wazero's name, but not wazero's
// format) is refused with one warning, the module is compiled anyway, and
// the next engine compiles and stores a good entry.
func TestDiskCache_wazeroRefuses(t *testing.T) {
	dir, wasm := t.TempDir(), trapWasm(t)
	trapRuns(t, must(newCachedEngine(t, dir)), wasm)
	e, logs := newCachedEngine(t, dir)
	path := e.disk.entries.Path(e.disk.entries.Key(wasm))
	payload, ok := e.disk.entries.Load(wasm)
	name, _, ok2 := splitPayload(payload)
	if !ok || !ok2 {
		t.Fatal("no good entry to start from")
	}
	// WAZEVO, then a version of the right length but not wazero's own.
	bad := append([]byte("WAZEVO\x05"), strings.Repeat("x", 5)...)
	if err := os.WriteFile(path, diskcache.Encode(e.disk.entries.Key(wasm), joinPayload(name, bad)), 0o600); err != nil {
		t.Fatal(err)
	}
	e, logs = newCachedEngine(t, dir)
	trapRuns(t, e, wasm)
	if n := strings.Count(logs.String(), "\n"); n != 1 || !strings.Contains(logs.String(), "wazero could not load it") {
		t.Errorf("want one warning saying wazero could not load the entry:\n%s", logs.String())
	}
	stagingEmpty(t, e)
	next, logs := newCachedEngine(t, dir)
	trapRuns(t, next, wasm)
	trapRuns(t, must(newCachedEngine(t, dir)), wasm)
	if logs.Len() != 0 {
		t.Errorf("warnings after the repair: %s", logs.String())
	}
}

// TestDiskCache_stagingUnusable: when the staging directory stops being
// usable after the engine started, wazero cannot write its entry and its
// compilation fails; the module is compiled without the cache, one
// warning says so, and the cache stays off.
func TestDiskCache_stagingUnusable(t *testing.T) {
	dir, wasm := t.TempDir(), trapWasm(t)
	e, logs := newCachedEngine(t, dir)
	if err := os.RemoveAll(e.disk.files); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(e.disk.files, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	trapRuns(t, e, wasm)
	notrap := testwasm.WAT(t, filepath.Join(testwasm.ModuleRoot(t), "host", "testdata", "notrap.wat"))
	if _, err := e.Compile(context.Background(), notrap); err != nil {
		t.Fatalf("a second module: %v", err)
	}
	if n := strings.Count(logs.String(), "\n"); n != 1 || !strings.Contains(logs.String(), "unusable") || e.disk.entries.On() {
		t.Errorf("cache on: %v; want one warning saying it is unusable:\n%s", e.disk.entries.On(), logs.String())
	}
}

func must(e *Engine, _ *bytes.Buffer) *Engine { return e }
