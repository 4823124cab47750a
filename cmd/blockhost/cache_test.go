package main

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/blockhost/blockhost/abi"
)

// TestRun_compileCacheSwap: another module's cache entry copied over
// trap.wasm's (same shape, but its _start returns) is refused with one
// warning, and trap.wasm still traps, on every engine.
func TestRun_compileCacheSwap(t *testing.T) {
	for _, name := range runnableEngines(t) {
		t.Run(name, func(t *testing.T) {
			dir, other := t.TempDir(), t.TempDir()
			for d, fx := range map[string]string{dir: "trap", other: "notrap"} {
				if r := runCLI(t, "", "--log-level", "warn", "run", "--engine", name, "--cache-dir", d, fixture(t, fx)); r.stderr != "" {
					t.Fatalf("filling the cache with %s: exit %d, stderr %s", fx, r.code, r.stderr)
				}
			}
			entry, foreign := onlyEntry(t, dir), onlyEntry(t, other)
			data, err := os.ReadFile(foreign)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(entry, data, 0o600); err != nil {
				t.Fatal(err)
			}
			r := runCLI(t, "", "--log-level", "warn", "run", "--engine", name, "--cache-dir", dir, fixture(t, "trap"))
			if r.code != exitError || r.res.Status != abi.StatusError || r.res.Error == nil || r.res.Error.Code != abi.CodeExecutionFailed {
				t.Fatalf("exit %d, result %s, want the trap\nstderr: %s", r.code, r.stdout, r.stderr)
			}
			lines := strings.Split(strings.TrimSpace(r.stderr), "\n")
			if len(lines) != 1 || !strings.Contains(lines[0], "compile cache entry refused") {
				t.Errorf("stderr %q, want one warning about the refused entry", r.stderr)
			}
		})
	}
}

func onlyEntry(t *testing.T, dir string) string {
	t.Helper()
	all, err := filepath.Glob(filepath.Join(dir, "*", "*.entry"))
	// The compiled code's entry: not the wazero engine's prepared module,
	// kept in a directory of its own (host/engine/wazero/prepared.go).
	m := slices.DeleteFunc(all, func(path string) bool {
		return strings.HasPrefix(filepath.Base(filepath.Dir(path)), "blockhost-prepared-")
	})
	if err != nil || len(m) != 1 {
		t.Fatalf("cache entries %v (%v), want one", m, err)
	}
	return m[0]
}

// TestRun_notWasm: a file that is not a WebAssembly module, or one the
// engine refuses, is reported in one line naming the file and what is
// wrong, with exit code 2 and no engine backtrace, on every engine.
func TestRun_notWasm(t *testing.T) {
	// A function body with an i32.add and nothing on the stack.
	invalidBody := "\x00asm\x01\x00\x00\x00\x01\x04\x01\x60\x00\x00\x03\x02\x01\x00\x0a\x05\x01\x03\x00\x6a\x0b"
	tests := []struct {
		name, content, want string
	}{
		{"script", "#!/bin/sh\necho hello\n", `not a WebAssembly module (no \0asm header)`},
		{"text", "(module)\n", "text format"},
		{"empty", "", "empty file"},
		{"version2", "\x00asm\x02\x00\x00\x00", "unsupported WebAssembly binary version 2"},
		{"component", "\x00asm\x0d\x00\x01\x00", "a WebAssembly component"},
		{"invalidBody", invalidBody, "not a valid WebAssembly module"},
	}
	for _, name := range runnableEngines(t) {
		for _, tc := range tests {
			t.Run(name+"/"+tc.name, func(t *testing.T) {
				path := filepath.Join(t.TempDir(), "junk.wasm")
				if err := os.WriteFile(path, []byte(tc.content), 0o644); err != nil {
					t.Fatal(err)
				}
				r := runCLI(t, "", "run", "--no-cache", "--engine", name, path)
				if r.code != exitUsage || r.stdout != "" {
					t.Fatalf("exit %d stdout %q, want %d and nothing", r.code, r.stdout, exitUsage)
				}
				msg := strings.TrimSuffix(r.stderr, "\n")
				if strings.Contains(msg, "\n") || !strings.Contains(msg, "junk.wasm") || !strings.Contains(msg, tc.want) {
					t.Errorf("stderr %q, want one line naming junk.wasm and saying %q", r.stderr, tc.want)
				}
				if strings.Contains(strings.ToLower(msg), "backtrace") {
					t.Errorf("stderr shows a backtrace: %q", msg)
				}
			})
		}
	}
}
