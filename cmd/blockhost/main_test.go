package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/blockhost/blockhost/abi"
	"github.com/blockhost/blockhost/internal/testwasm"
)

// TestMain lets a test run this binary as the blockhost command: with
// BLOCKHOST_TEST_MAIN set, the test binary is the CLI.
func TestMain(m *testing.M) {
	if os.Getenv("BLOCKHOST_TEST_MAIN") == "1" {
		os.Exit(runMain(signals.ctx, os.Args, os.Stdin, os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

type cliResult struct {
	code           int
	stdout, stderr string
	res            abi.StepResult
}

func runCLI(t *testing.T, stdin string, args ...string) cliResult {
	t.Helper()
	var out, errb bytes.Buffer
	code := runMain(context.Background(), append([]string{"blockhost"}, args...), strings.NewReader(stdin), &out, &errb)
	r := cliResult{code: code, stdout: out.String(), stderr: errb.String()}
	if bytes.HasPrefix(out.Bytes(), []byte("{")) {
		if err := json.Unmarshal(out.Bytes(), &r.res); err != nil {
			t.Fatalf("stdout is not a result: %v\n%s", err, out.String())
		}
	}
	return r
}

func fixture(t *testing.T, name string) string {
	return testwasm.WATFile(t, filepath.Join("..", "..", "host", "testdata", name+".wat"))
}

func TestRun_exitCodes(t *testing.T) {
	tests := []struct {
		name   string
		args   []string
		stdin  string
		code   int
		status abi.Status
		errc   abi.Code
	}{
		{"success", []string{"--input", "[1,2]", fixture(t, "echo")}, "", exitSuccess, abi.StatusSuccess, 0},
		{"stdinInput", []string{"--input", "-", fixture(t, "echo")}, `{"x":true}`, exitSuccess, abi.StatusSuccess, 0},
		{"timeout", []string{"--timeout", "100ms", fixture(t, "loop")}, "", exitTimeout, abi.StatusTimeout, abi.CodeCancelledByTimeout},
		{"startTimeout", []string{"--timeout", "100ms", fixture(t, "startloop")}, "", exitTimeout, abi.StatusTimeout, abi.CodeCancelledByTimeout},
		{"sleepTimeout", []string{"--timeout", "100ms", fixture(t, "wasisleep")}, "", exitTimeout, abi.StatusTimeout, abi.CodeCancelledByTimeout},
		{"memory", []string{"--memory", "32MiB", fixture(t, "membomb")}, "", exitError, abi.StatusError, abi.CodeQuotaExceeded},
		{"trap", []string{fixture(t, "trap")}, "", exitError, abi.StatusError, abi.CodeExecutionFailed},
		{"retryable", []string{fixture(t, "errorset")}, "", exitError, abi.StatusError, abi.CodeResourceUnavailable},
		{"outputLimit", []string{"--output-limit", "4KiB", "--input", strings.Repeat("x", 5000), fixture(t, "echo")}, "", exitError, abi.StatusError, abi.CodeQuotaExceeded},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := runCLI(t, tc.stdin, append([]string{"--log-level", "off", "run", "--no-cache"}, tc.args...)...)
			if r.code != tc.code {
				t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", r.code, tc.code, r.stdout, r.stderr)
			}
			if r.res.Status != tc.status {
				t.Fatalf("status %s, want %s", r.res.Status, tc.status)
			}
			if tc.errc != 0 && (r.res.Error == nil || r.res.Error.Code != tc.errc) {
				t.Fatalf("error %+v, want code %s", r.res.Error, tc.errc)
			}
		})
	}
}

func TestRun_outputIsJSON(t *testing.T) {
	r := runCLI(t, "", "--log-level", "off", "run", "--no-cache", "--step-id", "abc", "--input", `{"k":[1,2]}`, fixture(t, "echo"))
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	var compact bytes.Buffer
	if err := json.Compact(&compact, r.res.Output); err != nil {
		t.Fatal(err)
	}
	if r.res.StepID != "abc" || !strings.HasPrefix(r.res.Block, "echo") || compact.String() != `{"k":[1,2]}` {
		t.Fatalf("result %+v output %s", r.res, r.res.Output)
	}
}

func TestRun_badInput(t *testing.T) {
	badimport, abiv2, loop := fixture(t, "badimport"), fixture(t, "abiv2"), fixture(t, "loop")
	junk := filepath.Join(t.TempDir(), "junk.wasm")
	if err := os.WriteFile(junk, []byte("not wasm at all"), 0o644); err != nil {
		t.Fatal(err)
	}
	badManifest := filepath.Join(t.TempDir(), "block.hcl")
	if err := os.WriteFile(badManifest, []byte("block \"x\" {\n  module = \"x.wasm\"\n  limits {\n    timeout = \"soon\"\n  }\n}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		args []string
		want []string
	}{
		{"unknownImport", []string{"run", badimport}, []string{`"blockhost"."nope"`}},
		{"abiVersion", []string{"run", abiv2}, []string{"ABI v2", "ABI v1"}},
		{"garbage", []string{"run", junk}, []string{"junk.wasm", "not a valid WebAssembly module"}},
		{"missingModule", []string{"run", "/nonexistent/x.wasm"}, []string{"/nonexistent/x.wasm"}},
		{"noModule", []string{"run"}, []string{"no module"}},
		{"unknownFlag", []string{"run", "--bogus", loop}, []string{"-bogus"}},
		{"badSize", []string{"run", "--memory", "12QB", loop}, []string{"--memory", "12QB"}},
		{"zeroTimeout", []string{"run", "--timeout", "0s", loop}, []string{"--timeout"}},
		{"badDuration", []string{"run", "--timeout", "soon", loop}, []string{"timeout"}},
		{"badEnv", []string{"run", "--env", "1X=y", loop}, []string{"--env", "1X=y"}},
		{"badEngine", []string{"run", "--engine", "nope", loop}, []string{`"nope"`}},
		{"badManifest", []string{"run", "--manifest", badManifest}, []string{badManifest + ":4:"}},
		{"missingInputFile", []string{"run", "--input", "@/nonexistent/in.json", loop}, []string{"/nonexistent/in.json"}},
		{"badLogLevel", []string{"--log-level", "loud", "run", loop}, []string{"--log-level", "loud"}},
		{"unknownCommand", []string{"frob"}, []string{`"frob"`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := runCLI(t, "", tc.args...)
			if r.code != exitUsage {
				t.Fatalf("exit %d, want %d\nstderr: %s", r.code, exitUsage, r.stderr)
			}
			if r.stdout != "" {
				t.Errorf("stdout should be empty, got %q", r.stdout)
			}
			lines := strings.Split(strings.TrimSpace(r.stderr), "\n")
			if len(lines) != 1 {
				t.Errorf("want one line on stderr, got %d:\n%s", len(lines), r.stderr)
			}
			for _, w := range tc.want {
				if !strings.Contains(r.stderr, w) {
					t.Errorf("stderr %q does not name %q", r.stderr, w)
				}
			}
		})
	}
}

func TestRun_manifestAndFlags(t *testing.T) {
	dir := t.TempDir()
	wasm, err := os.ReadFile(fixture(t, "loop"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "spin.wasm"), wasm, 0o644); err != nil {
		t.Fatal(err)
	}
	m := filepath.Join(dir, "spin.hcl")
	src := "block \"spinner\" {\n  module = \"spin.wasm\"\n  limits {\n    timeout = \"100ms\"\n  }\n}\n"
	if err := os.WriteFile(m, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	r := runCLI(t, "", "--log-level", "off", "run", "--no-cache", "--manifest", m)
	if r.code != exitTimeout || r.res.Block != "spinner" || !strings.Contains(r.res.Error.Message, "100ms") {
		t.Fatalf("manifest run: exit %d result %+v stderr %s", r.code, r.res, r.stderr)
	}
	r = runCLI(t, "", "--log-level", "off", "run", "--no-cache", "--manifest", m, "--timeout", "150ms")
	if r.code != exitTimeout || !strings.Contains(r.res.Error.Message, "150ms") {
		t.Fatalf("flag override: exit %d result %+v", r.code, r.res.Error)
	}
}

func TestRun_grantsOnlyWhatIsGiven(t *testing.T) {
	mod := testwasm.GoFile(t, filepath.Join("testdata", "printenv"))
	t.Setenv("BLOCKHOST_SECRET", "host-only")
	var got struct {
		Env  []string `json:"env"`
		Args []string `json:"args"`
	}
	r := runCLI(t, "", "--log-level", "off", "run", "--no-cache", mod, "a1", "--flag-for-guest")
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	if err := json.Unmarshal(r.res.Output, &got); err != nil {
		t.Fatal(err)
	}
	if len(got.Env) != 0 {
		t.Errorf("guest saw environment %v with no grant", got.Env)
	}
	if strings.Join(got.Args[1:], " ") != "a1 --flag-for-guest" {
		t.Errorf("guest argv %v", got.Args)
	}
	r = runCLI(t, "", "--log-level", "off", "run", "--no-cache", "--env", "GREETING=hi", mod)
	if err := json.Unmarshal(r.res.Output, &got); err != nil {
		t.Fatal(err)
	}
	if strings.Join(got.Env, ",") != "GREETING=hi" {
		t.Errorf("guest environment %v, want only GREETING=hi", got.Env)
	}
}

func TestRun_diskCache(t *testing.T) {
	dir := t.TempDir()
	for i := range 2 {
		r := runCLI(t, "", "--log-level", "off", "run", "--cache-dir", dir, "--input", "1", fixture(t, "echo"))
		if r.code != 0 {
			t.Fatalf("run %d: exit %d %s", i, r.code, r.stderr)
		}
	}
	entries, err := os.ReadDir(dir)
	if err != nil || len(entries) == 0 {
		t.Fatalf("cache dir holds nothing: %v", err)
	}
}

// TestRun_signal runs the CLI as a child process and interrupts it.
func TestRun_signal(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM} {
		t.Run(sig.String(), func(t *testing.T) {
			cmd := exec.Command(os.Args[0], "--log-level", "off", "run", "--no-cache", "--timeout", "60s", fixture(t, "loop"))
			cmd.Env = append(os.Environ(), "BLOCKHOST_TEST_MAIN=1")
			var out bytes.Buffer
			cmd.Stdout = &out
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			time.Sleep(500 * time.Millisecond)
			if err := cmd.Process.Signal(sig); err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() { done <- cmd.Wait() }()
			select {
			case <-done:
			case <-time.After(20 * time.Second):
				cmd.Process.Kill()
				<-done
				t.Fatal("the CLI did not end after the signal")
			}
			if code := cmd.ProcessState.ExitCode(); code != exitCancelled {
				t.Fatalf("exit %d, want %d; stdout %s", code, exitCancelled, out.String())
			}
			var res abi.StepResult
			if err := json.Unmarshal(out.Bytes(), &res); err != nil {
				t.Fatal(err)
			}
			if res.Status != abi.StatusCancelled || res.Error.Code != abi.CodeCancelledByUser {
				t.Fatalf("result %+v", res)
			}
		})
	}
}

func TestBuild(t *testing.T) {
	out := filepath.Join(t.TempDir(), "printenv.wasm")
	r := runCLI(t, "", "build", filepath.Join("testdata", "printenv"), "-o", out)
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	b, err := os.ReadFile(out)
	if err != nil || !bytes.HasPrefix(b, []byte("\x00asm")) {
		t.Fatalf("build output is not wasm: %v", err)
	}
	if r := runCLI(t, "", "build", "/nonexistent/dir"); r.code != exitUsage || !strings.Contains(r.stderr, "/nonexistent/dir") {
		t.Fatalf("bad dir: exit %d %s", r.code, r.stderr)
	}
}

func TestVersion(t *testing.T) {
	r := runCLI(t, "", "version")
	if r.code != 0 || !strings.Contains(r.stdout, "abi v1") || !strings.Contains(r.stdout, "engine wazero") {
		t.Fatalf("exit %d stdout %q", r.code, r.stdout)
	}
}
