package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/blockhost/blockhost/abi"
)

// TestRun_pinnedModule is the swapped-module case of issue 11 on the
// command line, without --trusted-key: a different module copied over a
// pinned manifest's module does not run (exit 2, both digests named);
// batch answers such a line with an error naming the line, and a line's
// own sha256 pins the module too. An unpinned manifest is warned about
// once per batch, not once per line.
func TestRun_pinnedModule(t *testing.T) {
	dir := t.TempDir()
	echo, err := os.ReadFile(fixture(t, "echo"))
	if err != nil {
		t.Fatal(err)
	}
	other, err := os.ReadFile(fixture(t, "wasiecho"))
	if err != nil {
		t.Fatal(err)
	}
	hexOf := func(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }
	write := func(name string, b []byte) string {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	write("echo.wasm", echo)
	write("plain.wasm", echo)
	pinned := write("pinned.hcl", fmt.Appendf(nil, "block \"echo\" {\n  module = \"echo.wasm\"\n  sha256 = %q\n}\n", hexOf(echo)))
	unpinned := write("unpinned.hcl", []byte("block \"plain\" {\n  module = \"plain.wasm\"\n}\n"))

	if r := runCLI(t, "", "--log-level", "off", "run", "--no-cache", "-m", pinned, "--input", "[1]"); r.code != exitSuccess || r.res.Module != "sha256:"+hexOf(echo) {
		t.Fatalf("the pinned module: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	r := runCLI(t, "", "run", "--no-cache", "-m", unpinned, "--input", "[1]")
	if r.code != exitSuccess || strings.Count(r.stderr, "does not pin its module") != 1 {
		t.Errorf("unpinned: exit %d, stderr %s", r.code, r.stderr)
	}

	write("echo.wasm", other) // the swap
	r = runCLI(t, "", "--log-level", "off", "run", "--no-cache", "-m", pinned, "--input", "[1]")
	if r.code != exitUsage || r.stdout != "" || !strings.Contains(r.stderr, hexOf(echo)) || !strings.Contains(r.stderr, hexOf(other)) {
		t.Errorf("the swapped module: exit %d\nstdout %s\nstderr %s", r.code, r.stdout, r.stderr)
	}

	steps := writeLines(t, []string{
		fmt.Sprintf(`{"step_id":"swapped","manifest":%q}`, pinned),
		fmt.Sprintf(`{"step_id":"u1","manifest":%q}`, unpinned),
		fmt.Sprintf(`{"step_id":"u2","manifest":%q}`, unpinned),
		fmt.Sprintf(`{"step_id":"linepin","block":%q,"sha256":%q}`, filepath.Join(dir, "plain.wasm"), hexOf(other)),
		fmt.Sprintf(`{"step_id":"lineok","block":%q,"sha256":"sha256:%s"}`, filepath.Join(dir, "plain.wasm"), hexOf(echo)),
	})
	out := filepath.Join(dir, "out.jsonl")
	r = runCLI(t, "", "batch", "--no-cache", "-o", out, steps)
	byID := resultsByID(t, out)
	for id, want := range map[string]struct {
		status         abi.Status
		module, inText string
	}{
		"swapped": {abi.StatusError, hexOf(other), "line 1"},
		"u1":      {abi.StatusSuccess, hexOf(echo), ""},
		"u2":      {abi.StatusSuccess, hexOf(echo), ""},
		"linepin": {abi.StatusError, hexOf(echo), "line 4"},
		"lineok":  {abi.StatusSuccess, hexOf(echo), ""},
	} {
		res := byID[id]
		if res.Status != want.status || res.Module != "sha256:"+want.module {
			t.Errorf("%s: status %s module %s, want %s %s", id, res.Status, res.Module, want.status, want.module)
		}
		if want.inText != "" && (res.Error == nil || !strings.Contains(res.Error.Message, want.inText)) {
			t.Errorf("%s: error %+v does not name %s", id, res.Error, want.inText)
		}
	}
	if n := strings.Count(r.stderr, "does not pin its module"); n != 1 {
		t.Errorf("%d warnings about the unpinned manifest, want 1:\n%s", n, r.stderr)
	}

	// The worker's configuration pins too: it does not start (exit 2,
	// before any NATS server) with a module that is not the pinned one.
	conf := write("worker.hcl", fmt.Appendf(nil, "block \"echo\" {\n  module = \"plain.wasm\"\n  sha256 = %q\n}\n", hexOf(other)))
	// A worker that starts anyway is stopped by the hang-catcher.
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	var stderr bytes.Buffer
	code := runMain(ctx, []string{"blockhost", "--log-level", "off", "worker", "--no-cache", "--store", filepath.Join(dir, "nats"),
		"--nats-listen", "127.0.0.1:0", "--http", "off", "--config", conf}, strings.NewReader(""), io.Discard, &stderr)
	if code != exitUsage || !strings.Contains(stderr.String(), hexOf(other)) || !strings.Contains(stderr.String(), hexOf(echo)) {
		t.Errorf("worker with a module that is not the pinned one: exit %d\n%s", code, stderr.String())
	}
}
