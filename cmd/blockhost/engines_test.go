package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/blockhost/blockhost/abi"
	"github.com/blockhost/blockhost/host"
	"github.com/blockhost/blockhost/host/engine"
	"github.com/blockhost/blockhost/internal/conformance"
	"github.com/blockhost/blockhost/internal/testwasm"
)

// runnableEngines lists the engines this build can run; the others are
// logged.
func runnableEngines(t *testing.T) []string {
	t.Helper()
	var names []string
	for _, name := range engine.Names() {
		f, _ := engine.Lookup(name)
		e, err := f(t.Context(), engine.Config{})
		if errors.Is(err, engine.ErrUnavailable) {
			t.Logf("engine %s: %v", name, err)
			continue
		}
		if err != nil {
			t.Fatalf("engine %s: %v", name, err)
		}
		e.Close(t.Context())
		names = append(names, name)
	}
	return names
}

// TestRun_engines checks the foundation issue's acceptance rows through the
// CLI on every engine: the same exit codes, statuses and error codes, in
// the same time.
func TestRun_engines(t *testing.T) {
	hello := testwasm.GoFile(t, filepath.Join("..", "..", "examples", "hello"))
	wasiEcho := testwasm.GoFile(t, filepath.Join("..", "..", "examples", "wasi-echo"))
	tests := []struct {
		name    string
		args    []string
		code    int
		status  abi.Status
		errc    abi.Code
		output  string
		maxWall time.Duration
	}{
		{name: "hello", args: []string{"--input", `{"name":"ana"}`, hello}, code: exitSuccess, status: abi.StatusSuccess, output: `{"greeting":"hello, ana"}`},
		{name: "wasiCommand", args: []string{"--input", "abc", wasiEcho}, code: exitSuccess, status: abi.StatusSuccess},
		{name: "loop", args: []string{"--timeout", "200ms", fixture(t, "loop")}, code: exitTimeout, status: abi.StatusTimeout, errc: abi.CodeCancelledByTimeout, maxWall: 300 * time.Millisecond},
		{name: "startLoop", args: []string{"--timeout", "200ms", fixture(t, "startloop")}, code: exitTimeout, status: abi.StatusTimeout, errc: abi.CodeCancelledByTimeout, maxWall: 300 * time.Millisecond},
		{name: "wasiSleep", args: []string{"--timeout", "200ms", fixture(t, "wasisleep")}, code: exitTimeout, status: abi.StatusTimeout, errc: abi.CodeCancelledByTimeout, maxWall: 300 * time.Millisecond},
		{name: "memoryBomb", args: []string{"--memory", "32MiB", fixture(t, "membomb")}, code: exitError, status: abi.StatusError, errc: abi.CodeQuotaExceeded},
		{name: "trap", args: []string{fixture(t, "trap")}, code: exitError, status: abi.StatusError, errc: abi.CodeExecutionFailed},
	}
	for _, name := range runnableEngines(t) {
		for _, tc := range tests {
			t.Run(name+"/"+tc.name, func(t *testing.T) {
				start := time.Now()
				r := runCLI(t, "", append([]string{"--log-level", "off", "run", "--no-cache", "--engine", name}, tc.args...)...)
				wall := time.Since(start)
				if r.code != tc.code || r.res.Status != tc.status {
					t.Fatalf("exit %d status %s, want %d %s\nstdout: %s\nstderr: %s", r.code, r.res.Status, tc.code, tc.status, r.stdout, r.stderr)
				}
				if tc.errc != 0 && (r.res.Error == nil || r.res.Error.Code != tc.errc) {
					t.Fatalf("error %+v, want %s", r.res.Error, tc.errc)
				}
				var out bytes.Buffer
				json.Compact(&out, r.res.Output)
				if tc.output != "" && out.String() != tc.output {
					t.Errorf("output %s, want %s", r.res.Output, tc.output)
				}
				// The acceptance bound is checked loosely: other tests share
				// the machine. The wall time is logged for the record.
				if tc.maxWall > 0 {
					t.Logf("%s: %v wall", name, wall)
					if wall > tc.maxWall+time.Second {
						t.Errorf("took %v, acceptance bound %v", wall, tc.maxWall)
					}
				}
			})
		}
		t.Run(name+"/loadErrors", func(t *testing.T) {
			for fx, want := range map[string][]string{
				"badimport": {`unknown import "blockhost"."nope"`},
				"abiv2":     {"ABI v2", "ABI v1"},
			} {
				r := runCLI(t, "", "--log-level", "off", "run", "--no-cache", "--engine", name, fixture(t, fx))
				if r.code != exitUsage {
					t.Fatalf("%s: exit %d, want %d", fx, r.code, exitUsage)
				}
				for _, w := range want {
					if !strings.Contains(r.stderr, w) {
						t.Errorf("%s: stderr %q does not name %q", fx, r.stderr, w)
					}
				}
			}
			junk := filepath.Join(t.TempDir(), "junk.wasm")
			os.WriteFile(junk, []byte("not wasm"), 0o644)
			if r := runCLI(t, "", "--log-level", "off", "run", "--no-cache", "--engine", name, junk); r.code != exitUsage || !strings.Contains(r.stderr, "junk.wasm") {
				t.Errorf("garbage: exit %d stderr %q", r.code, r.stderr)
			}
		})
	}
}

// TestRun_engineSignal: SIGINT during a loop gives cancelled and exit 130
// on every engine, promptly.
func TestRun_engineSignal(t *testing.T) {
	for _, name := range runnableEngines(t) {
		t.Run(name, func(t *testing.T) {
			cmd := exec.Command(os.Args[0], "--log-level", "off", "run", "--no-cache", "--engine", name, "--timeout", "60s", fixture(t, "loop"))
			cmd.Env = append(os.Environ(), "BLOCKHOST_TEST_MAIN=1")
			var out strings.Builder
			cmd.Stdout = &out
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			// The loop is running once the process has been up a while;
			// the signal must find the CLI's handler installed, which under
			// a loaded machine can take more than any fixed sleep.
			waitSignalCaught(t, cmd.Process.Pid, syscall.SIGINT)
			time.Sleep(300 * time.Millisecond)
			sent := time.Now()
			if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
				t.Fatal(err)
			}
			err := cmd.Wait()
			took := time.Since(sent)
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != exitCancelled || !strings.Contains(out.String(), `"cancelled"`) {
				t.Fatalf("exit %v, stdout %s", err, out.String())
			}
			t.Logf("%s: ended %v after SIGINT", name, took)
			if took > time.Second {
				t.Errorf("ended %v after SIGINT", took)
			}
		})
	}
}

// TestRun_engineMemoryBombRSS: the memory bomb under a 32 MiB cap costs
// the process little more than the cap on every engine. It measures the
// bomb's own share: the peak RSS of a child CLI running the bomb minus that
// of a child running a Go block that stays small, under the same flags, so
// that the CLI's own footprint (and the race detector's) cancels out.
func TestRun_engineMemoryBombRSS(t *testing.T) {
	bomb := testwasm.GoFile(t, filepath.Join("..", "..", "examples", "membomb"))
	hello := helloModule(t)
	peak := func(t *testing.T, engine, module string, wantCode int) int64 {
		t.Helper()
		cmd := exec.Command(os.Args[0], "--log-level", "off", "run", "--no-cache", "--engine", engine, "--memory", "32MiB",
			"--input", `{"name":"rss"}`, module)
		cmd.Env = append(os.Environ(), "BLOCKHOST_TEST_MAIN=1")
		var out strings.Builder
		cmd.Stdout = &out
		err := cmd.Run()
		if code := cmd.ProcessState.ExitCode(); code != wantCode {
			t.Fatalf("%s: exit %d (%v), want %d; stdout %s", filepath.Base(module), code, err, wantCode, out.String())
		}
		ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage)
		if !ok {
			t.Skip("no rusage on this platform")
		}
		return ru.Maxrss * 1024 // KiB on Linux
	}
	// The race detector's shadow memory grows with the memory the guest
	// touches: allow it several times the cap.
	bound := int64(32<<20 + 96<<20)
	if raceEnabled() {
		bound = 32<<20*6 + 96<<20
	}
	for _, name := range runnableEngines(t) {
		t.Run(name, func(t *testing.T) {
			base := peak(t, name, hello, exitSuccess)
			got := peak(t, name, bomb, exitError)
			t.Logf("%s: peak RSS %d MB, a small block's %d MB: the bomb's share %d MB (bound %d MB)",
				name, got>>20, base>>20, (got-base)>>20, bound>>20)
			if got-base > bound {
				t.Errorf("the bomb under a 32MiB cap added %d MB to the peak RSS, want at most %d", (got-base)>>20, bound>>20)
			}
		})
	}
}

// raceEnabled reports whether this test binary was built with -race.
func raceEnabled() bool {
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "-race" {
				return s.Value == "true"
			}
		}
	}
	return false
}

// TestRun_thirdPartyPrograms runs the WASI programs built by other
// toolchains through `blockhost run` on every engine.
func TestRun_thirdPartyPrograms(t *testing.T) {
	dir := conformance.ThirdPartyDir(t)
	for _, name := range runnableEngines(t) {
		for _, tc := range conformance.ThirdPartyCases {
			t.Run(name+"/"+tc.Name, func(t *testing.T) {
				// blockhost names the block, and so argv[0], after the file.
				prog := filepath.Join(t.TempDir(), tc.BlockName()+".wasm")
				b, err := os.ReadFile(filepath.Join(dir, tc.Program))
				if err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(prog, b, 0o644); err != nil {
					t.Fatal(err)
				}
				args := []string{"--log-level", "off", "run", "--no-cache", "--engine", name, "--input", tc.Stdin}
				if tc.Timeout > 0 {
					args = append(args, "--timeout", tc.Timeout.String())
				}
				r := runCLI(t, "", append(append(args, prog), tc.Args...)...)
				conformance.Check(t, name, &r.res, tc.Want)
				want := map[abi.Status]int{abi.StatusSuccess: exitSuccess, abi.StatusError: exitError, abi.StatusTimeout: exitTimeout}[tc.Want.Status]
				if r.code != want {
					t.Errorf("exit %d, want %d", r.code, want)
				}
			})
		}
	}
}

// TestRun_manifestEngine: the manifest's engine is used, and a flag
// overrides it.
func TestRun_manifestEngine(t *testing.T) {
	dir := t.TempDir()
	wasm, err := os.ReadFile(fixture(t, "trap"))
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "trap.wasm"), wasm, 0o644)
	for _, name := range runnableEngines(t) {
		m := filepath.Join(dir, name+".hcl")
		src := "block \"trapper\" {\n  module = \"trap.wasm\"\n  engine = \"" + name + "\"\n}\n"
		if err := os.WriteFile(m, []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
		r := runCLI(t, "", "--log-level", "off", "run", "--no-cache", "--manifest", m)
		if r.code != exitError || r.res.Error == nil || r.res.Error.Message != "wasm trap: unreachable" {
			t.Errorf("%s: exit %d result %+v stderr %s", name, r.code, r.res, r.stderr)
		}
	}
	bad := filepath.Join(dir, "bad.hcl")
	os.WriteFile(bad, []byte("block \"trapper\" {\n  module = \"trap.wasm\"\n  engine = \"nope\"\n}\n"), 0o644)
	r := runCLI(t, "", "--log-level", "off", "run", "--no-cache", "--manifest", bad)
	if r.code != exitUsage || !strings.Contains(r.stderr, `"nope"`) || !strings.Contains(r.stderr, host.DefaultEngine) {
		t.Errorf("unknown engine: exit %d stderr %q", r.code, r.stderr)
	}
	r = runCLI(t, "", "--log-level", "off", "run", "--no-cache", "--manifest", bad, "--engine", host.DefaultEngine)
	if r.code != exitError {
		t.Errorf("--engine over the manifest's: exit %d stderr %q", r.code, r.stderr)
	}
}

// TestRun_wasmtimeWithoutCgo builds the CLI with CGO_ENABLED=0 and asks it
// for wasmtime: it must say plainly why not, with exit code 2, and still
// run blocks on wazero.
func TestRun_wasmtimeWithoutCgo(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the CLI without cgo")
	}
	bin := filepath.Join(t.TempDir(), "blockhost-nocgo")
	build := exec.Command("go", "build", "-o", bin, ".")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("CGO_ENABLED=0 go build: %v\n%s", err, out)
	}
	var stderr strings.Builder
	cmd := exec.Command(bin, "run", "--engine", "wasmtime", fixture(t, "trap"))
	cmd.Stderr = &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != exitUsage {
		t.Fatalf("exit %v, want %d; stderr %s", err, exitUsage, stderr.String())
	}
	want := "this blockhost was built without cgo, so the wasmtime engine is unavailable; rebuild with CGO_ENABLED=1 or use --engine wazero"
	if !strings.Contains(stderr.String(), want) || strings.Count(stderr.String(), "\n") != 1 {
		t.Errorf("stderr %q, want one line containing %q", stderr.String(), want)
	}
	cmd = exec.Command(bin, "--log-level", "off", "run", "--input", `[1]`, fixture(t, "echo"))
	if out, err := cmd.Output(); err != nil || !strings.Contains(string(out), `"success"`) {
		t.Errorf("wazero without cgo: %v %s", err, out)
	}
}

// waitSignalCaught waits until process pid has a handler for sig, as
// /proc/PID/status's SigCgt mask shows, so that sending it tests the
// handler and not a process still starting up. A hang-catcher bounds it.
func waitSignalCaught(t *testing.T, pid int, sig syscall.Signal) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
		if err != nil {
			t.Skipf("no /proc status to tell when the process is ready: %v", err)
		}
		for _, line := range strings.Split(string(b), "\n") {
			if mask, ok := strings.CutPrefix(line, "SigCgt:"); ok {
				if m, err := strconv.ParseUint(strings.TrimSpace(mask), 16, 64); err == nil && m&(1<<(uint(sig)-1)) != 0 {
					return
				}
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("process %d did not catch %v within a minute", pid, sig)
}
