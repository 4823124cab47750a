package wazero

import (
	"context"
	"crypto/sha256"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/blockhost/blockhost/host/engine"
	"github.com/blockhost/blockhost/host/engine/internal/diskcache"
	"github.com/blockhost/blockhost/internal/testwasm"
)

// preparedRuns compiles prepared.wat on e and checks what the prepared
// module must keep: the start function runs, the memory image is there,
// and a loop is interrupted at its deadline (the interruption checks).
func preparedRuns(t *testing.T, e *Engine, wasm []byte) {
	t.Helper()
	m, err := e.Compile(context.Background(), wasm)
	if err != nil {
		t.Fatal(err)
	}
	res, err := m.Run(context.Background(), engine.RunConfig{Entry: []string{"check"}})
	if err != nil || len(res.Results) != 1 || res.Results[0] != 0 {
		t.Fatalf("check: %+v, %v, want 0 (1: the start function did not run, 2: no image)", res, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, err := m.Run(ctx, engine.RunConfig{Entry: []string{"spin"}})
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, engine.ErrInterrupted) {
			t.Fatalf("spin: %v, want interrupted", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("spin was not interrupted 20 s after its deadline: the module has no interruption checks")
	}
}

func preparedPath(e *Engine, wasm []byte) string {
	sum := preparedSum(sha256.Sum256(wasm))
	return e.disk.prepared.Path(e.disk.prepared.Key(sum))
}

// TestPrepared_cached: the module prepared for wazero is kept in the disk
// cache, in a directory of its own, and a second engine compiles it from
// there instead of preparing the module again; it runs as the first did.
func TestPrepared_cached(t *testing.T) {
	dir := t.TempDir()
	wasm := testwasm.WAT(t, filepath.Join("testdata", "prepared.wat"))
	first, _ := newCachedEngine(t, dir)
	hits := preparedHits.Load()
	preparedRuns(t, first, wasm)
	if n := preparedHits.Load() - hits; n != 0 {
		t.Fatalf("the first engine read %d prepared modules from an empty cache", n)
	}
	path := preparedPath(first, wasm)
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("no prepared module kept: %v", err)
	}
	if got, want := filepath.Base(filepath.Dir(path)), preparedDirName(first.version); got != want {
		t.Errorf("prepared module in %s, want %s", got, want)
	}
	second, logs := newCachedEngine(t, dir)
	preparedRuns(t, second, wasm)
	if n := preparedHits.Load() - hits; n != 1 {
		t.Fatalf("the second engine read %d prepared modules, want 1", n)
	}
	if logs.Len() != 0 {
		t.Errorf("warnings: %s", logs)
	}
}

// TestPrepared_damaged: a damaged prepared module is refused with one
// warning and the module prepared again, and the entry is replaced.
func TestPrepared_damaged(t *testing.T) {
	dir := t.TempDir()
	wasm := testwasm.WAT(t, filepath.Join("testdata", "prepared.wat"))
	first, _ := newCachedEngine(t, dir)
	preparedRuns(t, first, wasm)
	path := preparedPath(first, wasm)
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	data[len(data)/2] ^= 0x40
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	hits := preparedHits.Load()
	e, logs := newCachedEngine(t, dir)
	preparedRuns(t, e, wasm)
	if n := preparedHits.Load() - hits; n != 0 {
		t.Fatalf("a damaged prepared module was used (%d)", n)
	}
	if n := strings.Count(logs.String(), "\n"); n != 1 || !strings.Contains(logs.String(), "checksum mismatch") {
		t.Errorf("want one warning of a checksum mismatch:\n%s", logs)
	}
	preparedRepaired(t, dir, wasm)
}

// preparedRepaired checks that a new engine on dir reads the prepared
// module of wasm from the cache, quietly, and runs it.
func preparedRepaired(t *testing.T, dir string, wasm []byte) {
	t.Helper()
	hits := preparedHits.Load()
	repaired, logs := newCachedEngine(t, dir)
	preparedRuns(t, repaired, wasm)
	if n := preparedHits.Load() - hits; n != 1 || logs.Len() != 0 {
		t.Errorf("after the repair: %d prepared modules read, want 1; warnings: %s", n, logs)
	}
}

// TestPrepared_unusable: a prepared entry whose checks pass but that is
// not a prepared module, or that wazero cannot compile, is the cache's
// fault: it is refused with one warning, the module is prepared again and
// compiles, and the entry is replaced.
func TestPrepared_unusable(t *testing.T) {
	for _, c := range []struct {
		name, warning string
		payload       []byte
	}{
		{"not a prepared module", "not a prepared module", []byte("something else")},
		{"does not compile", "wazero could not compile it", encodePrepared(prepared{src: []byte("\x00asm\x01\x00\x00\x00\x0a")})},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			wasm := testwasm.WAT(t, filepath.Join("testdata", "prepared.wat"))
			first, _ := newCachedEngine(t, dir)
			preparedRuns(t, first, wasm)
			first.disk.prepared.Store(preparedSum(sha256.Sum256(wasm)), c.payload)
			e, logs := newCachedEngine(t, dir)
			preparedRuns(t, e, wasm)
			if n := strings.Count(logs.String(), "\n"); n != 1 || !strings.Contains(logs.String(), c.warning) {
				t.Errorf("want one warning saying %q:\n%s", c.warning, logs)
			}
			preparedRepaired(t, dir, wasm)
		})
	}
}

// TestPrepared_refusedModule: a module wazero refuses leaves no prepared
// module behind.
func TestPrepared_refusedModule(t *testing.T) {
	dir := t.TempDir()
	e, _ := newCachedEngine(t, dir)
	// A function body with an i32.add and nothing on the stack.
	bad := []byte("\x00asm\x01\x00\x00\x00\x01\x04\x01\x60\x00\x00\x03\x02\x01\x00\x0a\x05\x01\x03\x00\x6a\x0b")
	if _, err := e.Compile(context.Background(), bad); err == nil {
		t.Fatal("an invalid module compiled")
	}
	if _, err := os.Stat(preparedPath(e, bad)); !os.IsNotExist(err) {
		t.Errorf("an invalid module left a prepared module: %v", err)
	}
}

// TestPrepared_decode: what encodePrepared writes decodes to the same,
// and a payload that is not a prepared module is refused.
func TestPrepared_decode(t *testing.T) {
	for _, p := range []prepared{
		{src: []byte("module"), img: []byte("image"), start: true},
		{src: []byte("module")},
	} {
		got, err := decodePrepared(encodePrepared(p))
		if err != nil || string(got.src) != string(p.src) || string(got.img) != string(p.img) || got.start != p.start {
			t.Errorf("%+v decoded as %+v, %v", p, got, err)
		}
	}
	good := encodePrepared(prepared{src: []byte("m"), img: []byte("i")})
	for name, b := range map[string][]byte{
		"no magic":       good[1:],
		"bad flag":       append(append([]byte(preparedMagic), 2), good[len(preparedMagic)+1:]...),
		"image too long": append([]byte(preparedMagic), 0, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0),
		"cut":            []byte(preparedMagic + "\x00\x01"),
	} {
		if _, err := decodePrepared(b); err == nil {
			t.Errorf("%s: decoded", name)
		}
	}
}

// TestPrepared_otherBuild: the key of prepared entries names this build
// (its Go build ID, as go tool buildid reads it), so an entry another
// build wrote, here a module with no interruption checks under this
// engine's version and rewrite, is never read.
func TestPrepared_otherBuild(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("go", "tool", "buildid", exe).Output()
	if err != nil {
		t.Fatalf("go tool buildid: %v", err)
	}
	if got, want := buildID(), strings.TrimSpace(string(out)); got == "" || got != want {
		t.Fatalf("build ID %q, go tool buildid says %q", got, want)
	}
	dir := t.TempDir()
	wasm := testwasm.WAT(t, filepath.Join("testdata", "prepared.wat"))
	e, _ := newCachedEngine(t, dir)
	key, ok := preparedKey(e.version)
	if !ok || !strings.HasSuffix(key, "; build "+buildID()) || !strings.HasPrefix(key, cacheKey(e.version)+";") {
		t.Fatalf("prepared key %q (%v): want the compiled code's key and this build's ID", key, ok)
	}
	other := diskcache.Open(nil, filepath.Join(dir, preparedDirName(e.version)), cacheKey(e.version)+"; build another")
	other.Store(preparedSum(sha256.Sum256(wasm)), encodePrepared(prepared{src: wasm}))
	hits := preparedHits.Load()
	preparedRuns(t, e, wasm)
	if n := preparedHits.Load() - hits; n != 0 {
		t.Fatalf("an entry of another build was read (%d)", n)
	}
}
