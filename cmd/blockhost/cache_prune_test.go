package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// runCacheCLI runs the CLI with the cache command, which newApp lists
// once main.go does; until then the test adds it.
func runCacheCLI(t *testing.T, args ...string) cliResult {
	t.Helper()
	var out, errb bytes.Buffer
	app := newApp(streams{in: strings.NewReader(""), out: &out, err: &errb})
	if app.Command("cache") == nil {
		app.Commands = append(app.Commands, cacheCommand())
	}
	code := exitSuccess
	if err := app.RunContext(context.Background(), append([]string{"blockhost"}, args...)); err != nil {
		code = exitUsage
		if ee, ok := err.(*exitErr); ok {
			code = ee.code
		}
		errb.WriteString(err.Error())
	}
	return cliResult{code: code, stdout: out.String(), stderr: errb.String()}
}

// TestCachePrune: blockhost cache prune removes a stale entry and an old
// staging file from a directory `run` filled, prints each and the bytes
// freed, and keeps the entry run uses: the next run finds it (no
// compilation: the entry's file is unchanged).
func TestCachePrune(t *testing.T) {
	dir := t.TempDir()
	if r := runCLI(t, "", "--log-level", "warn", "run", "--cache-dir", dir, fixture(t, "trap")); r.stderr != "" {
		t.Fatalf("filling the cache: exit %d, stderr %s", r.code, r.stderr)
	}
	entries, _ := filepath.Glob(filepath.Join(dir, "blockhost-wazero-*", "*.entry"))
	if len(entries) != 1 {
		t.Fatalf("entries %v, want run's one", entries)
	}
	used := entries[0]
	before, err := os.Stat(used)
	if err != nil {
		t.Fatal(err)
	}
	stale := filepath.Join(dir, "blockhost-wazero-v0.0.1-arch-os", "x.entry")
	leftover := filepath.Join(filepath.Dir(used), ".tmp-1")
	for _, p := range []string{stale, leftover} {
		os.MkdirAll(filepath.Dir(p), 0o700)
		if err := os.WriteFile(p, make([]byte, 2048), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	old := time.Now().Add(-2 * time.Hour)
	os.Chtimes(leftover, old, old)

	r := runCacheCLI(t, "cache", "prune", "--dry-run", "--cache-dir", dir)
	if r.code != exitSuccess || !strings.Contains(r.stdout, "would remove") || !strings.Contains(r.stdout, "would free 4.0 KiB (4096 bytes)") {
		t.Fatalf("dry run: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if _, err := os.Stat(stale); err != nil {
		t.Fatalf("the dry run removed %s", stale)
	}
	r = runCacheCLI(t, "cache", "prune", "--cache-dir", dir)
	if r.code != exitSuccess {
		t.Fatalf("exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	for _, want := range []string{stale, leftover, "3 removed, freed 4.0 KiB (4096 bytes)"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("output does not name %s:\n%s", want, r.stdout)
		}
	}
	if strings.Contains(r.stdout, used) {
		t.Errorf("the entry in use is listed:\n%s", r.stdout)
	}
	if r := runCLI(t, "", "--log-level", "warn", "run", "--cache-dir", dir, fixture(t, "trap")); r.stderr != "" || r.code != exitError {
		t.Fatalf("run after the prune: exit %d, stderr %s", r.code, r.stderr)
	}
	after, err := os.Stat(used)
	if err != nil || !os.SameFile(before, after) {
		t.Errorf("the entry in use was removed or rewritten: %v", err)
	}
	if r := runCacheCLI(t, "cache", "prune", "--min-age", "-1s", "--cache-dir", dir); r.code != exitUsage {
		t.Errorf("a negative --min-age: exit %d, want %d", r.code, exitUsage)
	}
}
