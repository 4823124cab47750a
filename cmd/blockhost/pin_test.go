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
	"sync"
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
	echo, other := pinModules(t)
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
	if code != exitUsage || !strings.Contains(stderr.String(), hexOf(other)) || !strings.Contains(stderr.String(), hexOf(echo)) ||
		!strings.Contains(stderr.String(), "the configuration "+conf+" pins") {
		t.Errorf("worker with a module that is not the pinned one: exit %d\n%s", code, stderr.String())
	}
}

// pinModules returns two different modules, the one a pin names and
// another.
func pinModules(t *testing.T) (echo, other []byte) {
	t.Helper()
	echo, err := os.ReadFile(fixture(t, "echo"))
	if err != nil {
		t.Fatal(err)
	}
	other, err = os.ReadFile(fixture(t, "wasiecho"))
	if err != nil {
		t.Fatal(err)
	}
	return echo, other
}

// hexOf is b's SHA-256 in lower-case hex.
func hexOf(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }

// TestWorker_blockPin: --block TYPE=PATH@sha256:HEX pins the module as a
// configuration's sha256 does. The pinned module starts the worker; another
// module stops it before it starts (exit 2, naming the job type, the path
// and both digests); a malformed pin, here or in --config, is a usage
// error naming what is wrong.
func TestWorker_blockPin(t *testing.T) {
	dir := t.TempDir()
	echo, other := pinModules(t)
	mod := filepath.Join(dir, "echo.wasm")
	if err := os.WriteFile(mod, echo, 0o644); err != nil {
		t.Fatal(err)
	}
	badConf := filepath.Join(dir, "bad.hcl")
	if err := os.WriteFile(badConf, []byte("block \"echo\" {\n  module = \"echo.wasm\"\n  sha256 = \"not-a-digest\"\n}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// worker runs a worker until it is ready, then stops it; a worker that
	// does not stop is stopped by the hang-catcher.
	worker := func(args ...string) (int, string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
		defer cancel()
		stderr := &readyWriter{ready: cancel}
		code := runMain(ctx, append([]string{"blockhost", "--log-level", "info", "worker", "--no-cache", "--store", filepath.Join(dir, "nats"),
			"--nats-listen", "127.0.0.1:0", "--http", "off"}, args...), strings.NewReader(""), io.Discard, stderr)
		return code, stderr.String()
	}

	for _, pin := range []string{"@sha256:" + hexOf(echo), "@SHA256:" + strings.ToUpper(hexOf(echo))} {
		if code, stderr := worker("--block", "echo="+mod+pin); code != exitSuccess || !strings.Contains(stderr, "worker ready") {
			t.Errorf("pinned to its own digest (%s): exit %d\n%s", pin, code, stderr)
		}
	}

	code, stderr := worker("--block", "echo="+mod+"@sha256:"+hexOf(other))
	if code != exitUsage || strings.Contains(stderr, "worker ready") {
		t.Errorf("pinned to another digest: exit %d\n%s", code, stderr)
	}
	for _, want := range []string{`"echo"`, mod, hexOf(echo), hexOf(other), "the --block flag pins"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("the refusal does not name %s:\n%s", want, stderr)
		}
	}

	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--block", "echo=" + mod + "@sha256:" + hexOf(echo)[:63]}, "63 characters"},
		{[]string{"--block", "echo=" + mod + "@sha256:" + hexOf(echo)[:62] + "zz"}, "hexadecimal"},
		{[]string{"--block", "echo=" + mod + "@md5:0123"}, `unknown digest algorithm "md5"`},
		{[]string{"--block", "echo=@sha256:" + hexOf(echo)}, "no path before the pin"},
		{[]string{"--config", badConf}, `"not-a-digest" is not a SHA-256 digest`},
	} {
		code, stderr := worker(tc.args...)
		if code != exitUsage || !strings.Contains(stderr, tc.want) || strings.Contains(stderr, "worker ready") {
			t.Errorf("%v: exit %d, want %d and %q in\n%s", tc.args, code, exitUsage, tc.want, stderr)
		}
	}
}

// readyWriter keeps what it is written and calls ready once the worker
// says it is ready.
type readyWriter struct {
	mu    sync.Mutex
	buf   bytes.Buffer
	ready func()
}

func (w *readyWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	if bytes.Contains(w.buf.Bytes(), []byte("worker ready")) {
		w.ready()
	}
	return len(p), nil
}

func (w *readyWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}
