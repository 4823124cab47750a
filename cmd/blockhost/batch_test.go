package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
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

func helloModule(t *testing.T) string {
	return testwasm.GoFile(t, filepath.Join("..", "..", "examples", "hello"))
}

func writeLines(t *testing.T, lines []string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "steps.jsonl")
	if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func parseResults(t *testing.T, out string) []abi.StepResult {
	t.Helper()
	var rs []abi.StepResult
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if line == "" {
			continue
		}
		var r abi.StepResult
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("result line %q: %v", line, err)
		}
		rs = append(rs, r)
	}
	return rs
}

// resultsByID reads the results batch wrote to path, by step ID.
func resultsByID(t *testing.T, path string) map[string]abi.StepResult {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	byID := map[string]abi.StepResult{}
	for _, res := range parseResults(t, string(b)) {
		byID[res.StepID] = res
	}
	return byID
}

// Every line gets one result, bad lines included, with its own step ID or
// FILE:LINE; the summary goes to standard error.
func TestBatch_resultPerLine(t *testing.T) {
	hello := helloModule(t)
	errorset := fixture(t, "errorset")
	path := writeLines(t, []string{
		fmt.Sprintf(`{"step_id":"a","block":%q,"input":{"name":"ana"}}`, hello),
		fmt.Sprintf(`{"block":%q,"input_text":"{\"name\":\"bo\"}","priority":"high"}`, hello),
		"",
		fmt.Sprintf(`{"step_id":"r","block":%q,"retry":{"max_attempts":3,"backoff_initial":"1ms","backoff_max":"2ms"}}`, errorset),
		fmt.Sprintf(`{"step_id":"nr","block":%q,"retry":{"max_attempts":3,"non_retryable":["resource_unavailable"]}}`, errorset),
		`{"step_id":"typo","blok":"x"}`,
		`not json`,
		`{"step_id":"missing","block":"/nonexistent/x.wasm"}`,
		fmt.Sprintf(`{"step_id":"badprio","block":%q,"priority":"urgent"}`, hello),
	})
	out := filepath.Join(t.TempDir(), "out.jsonl")
	r := runCLI(t, "", "--log-level", "off", "batch", "--no-cache", "-c", "2", "-o", out, path)
	if r.code != exitError {
		t.Fatalf("exit %d, want 1 (some steps failed)\nstderr: %s", r.code, r.stderr)
	}
	byID := resultsByID(t, out)
	want := map[string]struct {
		status   abi.Status
		code     abi.Code
		attempts int
	}{
		"a":             {abi.StatusSuccess, 0, 1},
		"steps.jsonl:2": {abi.StatusSuccess, 0, 1},
		"r":             {abi.StatusError, abi.CodeResourceUnavailable, 3},
		"nr":            {abi.StatusError, abi.CodeResourceUnavailable, 1},
		"typo":          {abi.StatusError, abi.CodeInvalidFormat, 0}, // issue 10 point 2: the step_id is kept
		"steps.jsonl:7": {abi.StatusError, abi.CodeInvalidFormat, 0},
		"missing":       {abi.StatusError, abi.CodeInvalidInput, 0},
		"badprio":       {abi.StatusError, abi.CodeInvalidInput, 0},
	}
	if len(byID) != len(want) {
		t.Fatalf("%d results, want %d: %v", len(byID), len(want), byID)
	}
	for id, w := range want {
		got, ok := byID[id]
		if !ok {
			t.Errorf("no result for %s", id)
			continue
		}
		if got.Status != w.status || got.Attempts != w.attempts || (w.code != 0 && (got.Error == nil || got.Error.Code != w.code)) {
			t.Errorf("%s: %s attempts %d error %+v; want %s %s attempts %d", id, got.Status, got.Attempts, got.Error, w.status, w.code, w.attempts)
		}
	}
	for _, s := range []string{"success", "error", "total", "steps/s"} {
		if !strings.Contains(r.stderr, s) {
			t.Errorf("summary lacks %q:\n%s", s, r.stderr)
		}
	}
	if strings.Contains(r.stderr, "\r") {
		t.Errorf("progress bar drawn on a non-terminal")
	}
}

func TestBatch_usage(t *testing.T) {
	for _, args := range [][]string{
		{"batch"},
		{"batch", "/nonexistent/steps.jsonl"},
		{"batch", "--concurrency", "0", "-"},
		{"batch", "--max-attempts", "0", "-"},
		{"batch", "a.jsonl", "b.jsonl"},
	} {
		r := runCLI(t, "", args...)
		if r.code != exitUsage || strings.Count(strings.TrimSpace(r.stderr), "\n") != 0 {
			t.Errorf("%v: exit %d stderr %q", args, r.code, r.stderr)
		}
	}
}

// Acceptance 12: a batch of 1,000 hello steps, interrupted half-way,
// still writes one result per step, each cancelled or finished.
func TestBatch_interruptHalfWay(t *testing.T) {
	hello := helloModule(t)
	const steps = 200 // enough to interrupt half-way; lean under -race on a loaded machine
	lines := make([]string, steps)
	for i := range lines {
		lines[i] = fmt.Sprintf(`{"step_id":"s%d","block":%q,"input":{"name":"n%d"}}`, i, hello, i)
	}
	path := writeLines(t, lines)
	cmd := exec.Command(os.Args[0], "--log-level", "off", "batch", "--cache-dir", t.TempDir(), "--concurrency", "2", path)
	cmd.Env = append(os.Environ(), "BLOCKHOST_TEST_MAIN=1")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var all []string
	sc := bufio.NewScanner(stdout)
	sc.Buffer(nil, 1<<20)
	signalled := false
	deadline := time.AfterFunc(5*time.Minute, func() { cmd.Process.Kill() })
	defer deadline.Stop()
	for sc.Scan() {
		all = append(all, sc.Text())
		if !signalled && len(all) == steps/2 {
			if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
				t.Fatal(err)
			}
			signalled = true
		}
	}
	err = cmd.Wait()
	if code := cmd.ProcessState.ExitCode(); code != exitCancelled {
		t.Fatalf("exit %d (%v), want %d; stderr:\n%s", code, err, exitCancelled, stderr.String())
	}
	res := parseResults(t, strings.Join(all, "\n"))
	if len(res) != steps {
		t.Fatalf("%d results, want %d", len(res), steps)
	}
	seen := map[string]bool{}
	count := map[abi.Status]int{}
	for _, r := range res {
		if seen[r.StepID] {
			t.Fatalf("two results for %s", r.StepID)
		}
		seen[r.StepID] = true
		count[r.Status]++
		if r.Status != abi.StatusSuccess && r.Status != abi.StatusCancelled {
			t.Fatalf("step %s ended %s: %+v", r.StepID, r.Status, r.Error)
		}
	}
	if count[abi.StatusCancelled] == 0 || count[abi.StatusSuccess] < steps/2 {
		t.Fatalf("counts %v: want at least %d successes and some cancelled", count, steps/2)
	}
	if !strings.Contains(stderr.String(), "cancelled") {
		t.Errorf("no summary on stderr:\n%s", stderr.String())
	}
	t.Logf("after Ctrl-C at %d results: %v", steps/2, count)
}
