package wazero

import (
	"bytes"
	"context"
	"crypto/sha256"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

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
	t.Cleanup(func() {
		// Bounded, so that a run that was not interrupted fails its test
		// rather than hanging the package's.
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		e.Close(ctx)
	})
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
	links := stagedLinks.Load()
	trapRuns(t, second, wasm)
	if got := counts(second); got != [4]int64{1, 0, 0, 0} {
		t.Fatalf("second engine: hits, misses, rejected, write errors = %v", got)
	}
	if stagedLinks.Load() != links+1 {
		t.Error("the entry was copied to the staging directory, not linked")
	}
	stagingEmpty(t, second)
	if logs.Len() != 0 {
		t.Errorf("warnings: %s", logs.String())
	}
}

// TestDiskCache_wazeroRefuses: an entry that passes every check but that
// wazero cannot load (written under wazero's name, but not in wazero's
// format) is refused with one warning, the module is compiled anyway, and
// the next engine compiles and stores a good entry.
func TestDiskCache_wazeroRefuses(t *testing.T) {
	dir, wasm := t.TempDir(), trapWasm(t)
	trapRuns(t, must(newCachedEngine(t, dir)), wasm)
	e, logs := newCachedEngine(t, dir)
	sum := sha256.Sum256(wasm)
	path := e.disk.entries.Path(e.disk.entries.Key(sum))
	payload, ok := e.disk.entries.Load(sum, nil)
	name, ok2 := payloadName(payload)
	if !ok || !ok2 {
		t.Fatal("no good entry to start from")
	}
	// Not wazero's format: no WAZEVO at the start.
	bad := []byte(strings.Repeat("x", 64))
	if err := os.WriteFile(path, diskcache.Encode(e.disk.entries.Key(sum), joinPayload(name, bad)), 0o600); err != nil {
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

// TestDiskCache_stageChecksTheFile: a link is staged only when it names
// the file that was checked; when another file took the entry's name in
// between, the checked file's payload is copied instead.
func TestDiskCache_stageChecksTheFile(t *testing.T) {
	e, _ := newCachedEngine(t, t.TempDir())
	sum := sha256.Sum256([]byte("a module"))
	name := strings.Repeat("ab", sha256.Size)
	e.disk.entries.Store(sum, joinPayload(name, []byte("checked")))
	path := e.disk.entries.Path(e.disk.entries.Key(sum))
	checked, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		replace bool
		want    string
	}{{false, string(checked)}, {true, "checked"}} {
		entry, ok := e.disk.entries.Check(sum, nameLen+1)
		if !ok {
			t.Fatal("no entry")
		}
		if c.replace {
			writeTestFile(t, path+".new", "other bytes")
			if err := os.Rename(path+".new", path); err != nil {
				t.Fatal(err)
			}
		}
		links := stagedLinks.Load()
		staged, err := e.disk.stage(name, entry, path)
		entry.Close()
		if err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(filepath.Join(e.disk.files, name))
		if err != nil || string(got) != c.want || (stagedLinks.Load() != links) == c.replace {
			t.Errorf("replaced %v: staged %q (%v), linked %v; want %q", c.replace, got, err, stagedLinks.Load() != links, c.want)
		}
		if _, err := e.disk.collect(name, staged); err != nil {
			t.Fatal(err)
		}
	}
	stagingEmpty(t, e)
}

func writeTestFile(t *testing.T, path, s string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
}

func must(e *Engine, _ *bytes.Buffer) *Engine { return e }
