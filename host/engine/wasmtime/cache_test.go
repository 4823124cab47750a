//go:build cgo

package wasmtime

import (
	"bytes"
	"context"
	"crypto/sha256"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/blockhost/blockhost/host/engine"
	"github.com/blockhost/blockhost/host/engine/internal/diskcache"
	"github.com/blockhost/blockhost/internal/testwasm"
)

// newCachedEngine creates an engine keeping compiled code in dir.
func newCachedEngine(t *testing.T, dir string) *Engine {
	t.Helper()
	e, err := New(context.Background(), engine.Config{CacheDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close(context.Background()) })
	return e.(*Engine)
}

// echoRuns compiles wasiecho on e and checks that it runs.
func echoRuns(t *testing.T, e *Engine, wasm []byte) {
	t.Helper()
	m, err := e.Compile(context.Background(), wasm)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	res, err := m.Run(context.Background(), engine.RunConfig{
		Entry: []string{"_start"}, Args: []string{"echo"}, Stdin: strings.NewReader("cached"), Stdout: &out,
	})
	if err != nil || res.Exited || out.String() != "cached" {
		t.Fatalf("run: %+v, %v, output %q", res, err, out.String())
	}
}

func cacheCounts(e *Engine) [4]int64 {
	c := e.cache
	return [4]int64{c.Hits.Load(), c.Misses.Load(), c.Rejected.Load(), c.WriteErrors.Load()}
}

func wasiEcho(t *testing.T) []byte {
	return testwasm.WAT(t, filepath.Join(testwasm.ModuleRoot(t), "host", "testdata", "wasiecho.wat"))
}

// entryPath returns the one cache entry in dir.
func entryPath(t *testing.T, dir string) string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "wasmtime-*", "*"+diskcache.Ext))
	if err != nil || len(m) != 1 {
		t.Fatalf("cache entries %v (%v), want one", m, err)
	}
	return m[0]
}

func TestDiskCache_hit(t *testing.T) {
	dir, wasm := t.TempDir(), wasiEcho(t)
	first := newCachedEngine(t, dir)
	echoRuns(t, first, wasm)
	if got := cacheCounts(first); got != [4]int64{0, 1, 0, 0} {
		t.Fatalf("first engine: hits, misses, rejected, write errors = %v", got)
	}
	second := newCachedEngine(t, dir)
	echoRuns(t, second, wasm)
	if got := cacheCounts(second); got != [4]int64{1, 0, 0, 0} {
		t.Fatalf("second engine: hits, misses, rejected, write errors = %v", got)
	}
	// On Linux the code hit is mapped from a sealed memory file, not
	// copied (deserialize).
	if maps, err := os.ReadFile("/proc/self/maps"); err == nil && !bytes.Contains(maps, []byte("memfd:"+codeFileName)) {
		t.Error("the cached code is not mapped from a sealed memory file")
	}
	info, err := os.Stat(filepath.Dir(entryPath(t, dir)))
	if err != nil || info.Mode().Perm() != 0o700 {
		t.Errorf("cache directory mode %v (%v), want 0700", info.Mode().Perm(), err)
	}
}

// TestDiskCache_untrusted damages a good entry in each way a stale or
// corrupt file can be wrong; each must be rejected, recompiled, and
// replaced by a good entry that the next engine uses.
func TestDiskCache_untrusted(t *testing.T) {
	wasm := wasiEcho(t)
	key := newCachedEngine(t, t.TempDir()).cache.Key(sha256.Sum256(wasm))
	damage := map[string]func(t *testing.T, data []byte) []byte{
		"flippedPayloadByte": func(_ *testing.T, data []byte) []byte {
			data[len(data)-100] ^= 0xff
			return data
		},
		"truncated": func(_ *testing.T, data []byte) []byte { return data[:len(data)/2] },
		"empty":     func(_ *testing.T, data []byte) []byte { return nil },
		// An entry written under other settings or by another version, or
		// for another module: the key in its header is not the expected one.
		"staleKey": func(t *testing.T, data []byte) []byte {
			return diskcache.Encode("blockhost-compile-cache 2; wasmtime-go v38.0.0; other settings", []byte("payload"))
		},
		// Header and checksum agree, but the payload is not wasmtime's:
		// deserialization must fail and the module be compiled.
		"foreignPayload": func(t *testing.T, data []byte) []byte {
			return diskcache.Encode(key, joinPayload([]byte("\x7fELF not a wasmtime artifact"), nil))
		},
		// Header and checksum agree, but the payload's image length is
		// more than the payload holds.
		"badImageLength": func(t *testing.T, data []byte) []byte {
			return diskcache.Encode(key, bytes.Repeat([]byte{0x7f}, 16))
		},
	}
	for name, f := range damage {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			echoRuns(t, newCachedEngine(t, dir), wasm)
			path := entryPath(t, dir)
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, f(t, bytes.Clone(data)), 0o600); err != nil {
				t.Fatal(err)
			}
			e := newCachedEngine(t, dir)
			echoRuns(t, e, wasm)
			if got := cacheCounts(e); got != [4]int64{0, 0, 1, 0} {
				t.Fatalf("damaged entry: hits, misses, rejected, write errors = %v", got)
			}
			repaired, err := os.ReadFile(path)
			if err != nil || !bytes.Equal(repaired, data) {
				// Compilation is deterministic: the replacement is the same
				// good entry.
				t.Errorf("entry not replaced by a good one (%v)", err)
			}
			next := newCachedEngine(t, dir)
			echoRuns(t, next, wasm)
			if got := cacheCounts(next); got != [4]int64{1, 0, 0, 0} {
				t.Fatalf("after repair: hits, misses, rejected, write errors = %v", got)
			}
		})
	}
}

// TestDiskCache_keyedBySettings: an engine under other settings neither
// finds nor overwrites another's entry.
func TestDiskCache_keyedBySettings(t *testing.T) {
	dir, wasm := t.TempDir(), wasiEcho(t)
	echoRuns(t, newCachedEngine(t, dir), wasm)
	other := newCachedEngine(t, dir)
	other.cache = &diskCache{diskcache.Open(nil, other.cache.Dir(), "other settings")}
	echoRuns(t, other, wasm)
	if got := cacheCounts(other); got != [4]int64{0, 1, 0, 0} {
		t.Fatalf("hits, misses, rejected, write errors = %v", got)
	}
	m, _ := filepath.Glob(filepath.Join(dir, "wasmtime-*", "*"+diskcache.Ext))
	if len(m) != 2 {
		t.Fatalf("entries %v, want two", m)
	}
}

func TestDiskCache_unwritable(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("root can write anywhere")
	}
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o500); err != nil {
		t.Fatal(err)
	}
	defer os.Chmod(dir, 0o700)
	e := newCachedEngine(t, dir)
	echoRuns(t, e, wasiEcho(t))
	if e.cache.On() {
		t.Fatal("the cache is on in a directory that cannot be written")
	}
}

// TestDiskCache_notADirectory: a cache path that cannot be a directory
// costs compilation time, never a failed compile.
func TestDiskCache_notADirectory(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	e := newCachedEngine(t, file)
	echoRuns(t, e, wasiEcho(t))
	if e.cache.On() {
		t.Fatal("the cache is on in a directory that cannot be made")
	}
}

// TestCompile_borrowed: the engine keeps nothing of the bytes Compile is
// given (engine.Borrower). The bytes are overwritten once Compile
// returns, and the module still runs with its data segment intact:
// compiled without a cache, compiled into the disk cache, and loaded from
// it.
func TestCompile_borrowed(t *testing.T) {
	wasm := testwasm.WAT(t, filepath.Join("testdata", "residue.wat"))
	dir := t.TempDir()
	for _, c := range []struct {
		name string
		e    *Engine
	}{
		{"no cache", newTestEngine(t)},
		{"cache miss", newCachedEngine(t, dir)},
		{"cache hit", newCachedEngine(t, dir)},
	} {
		t.Run(c.name, func(t *testing.T) {
			borrowed := bytes.Clone(wasm)
			m, err := c.e.Compile(context.Background(), borrowed)
			if err != nil {
				t.Fatal(err)
			}
			for i := range borrowed {
				borrowed[i] = 0xff
			}
			res, err := m.Run(context.Background(), engine.RunConfig{Entry: []string{"read"}})
			if err != nil || len(res.Results) != 1 || res.Results[0] != 0 {
				t.Fatalf("read after the bytes were overwritten: %+v, %v, want 0", res, err)
			}
			if c.name == "cache hit" {
				if n := cacheCounts(c.e); n[0] != 1 {
					t.Fatalf("cache hits, misses, rejections, write errors %v: the module was not loaded from the cache", n)
				}
			}
		})
	}
}
