package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/blockhost/blockhost/abi"
)

// `blockhost run` goes through the retry policy: a retryable error is
// tried --max-attempts times, a permanent one once.
func TestRun_retryFlags(t *testing.T) {
	errorset := fixture(t, "errorset")
	tests := []struct {
		name     string
		args     []string
		attempts int
	}{
		{"default", []string{"--backoff-initial", "1ms", "--backoff-max", "2ms"}, 3},
		{"maxAttempts", []string{"--max-attempts", "5", "--backoff-initial", "1ms", "--backoff-max", "1ms"}, 5},
		{"once", []string{"--max-attempts", "1"}, 1},
		{"nonRetryable", []string{"--non-retryable", "resource_unavailable"}, 1},
		{"nonRetryableNumber", []string{"--non-retryable", "2002"}, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := runCLI(t, "", append(append([]string{"--log-level", "off", "run", "--no-cache"}, tc.args...), errorset)...)
			if r.code != exitError || r.res.Attempts != tc.attempts || r.res.RetriesUsed != tc.attempts-1 {
				t.Fatalf("exit %d attempts %d retries %d, want %d attempts\n%s", r.code, r.res.Attempts, r.res.RetriesUsed, tc.attempts, r.stderr)
			}
			if r.res.Error.Code != abi.CodeResourceUnavailable {
				t.Fatalf("error %+v", r.res.Error)
			}
		})
	}
	// A trap is permanent: one attempt, however many are allowed.
	r := runCLI(t, "", "--log-level", "off", "run", "--no-cache", "--max-attempts", "4", fixture(t, "trap"))
	if r.code != exitError || r.res.Attempts != 1 {
		t.Fatalf("trap: exit %d attempts %d", r.code, r.res.Attempts)
	}
}

// The total deadline stops the retries with timeout, keeping the error.
// The waits are drawn from [0, 10m] (full jitter): with a wait drawn from
// [0, 300ms], as the test once had, a retry could start and the deadline
// pass during it, which ends the step as cancelled_by_timeout instead
// (CI saw that once).
func TestRun_totalDeadline(t *testing.T) {
	r := runCLI(t, "", "--log-level", "off", "run", "--no-cache", "--max-attempts", "10",
		"--backoff-initial", "10m", "--backoff-max", "10m", "--total-deadline", "200ms", fixture(t, "errorset"))
	if r.code != exitTimeout || r.res.Status != abi.StatusTimeout || r.res.Error.Code != abi.CodeResourceUnavailable {
		t.Fatalf("exit %d result %+v %+v", r.code, r.res, r.res.Error)
	}
}

// A manifest's retry block applies; flags override it.
func TestRun_manifestRetry(t *testing.T) {
	dir := t.TempDir()
	wasm, err := os.ReadFile(fixture(t, "errorset"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "down.wasm"), wasm, 0o644); err != nil {
		t.Fatal(err)
	}
	m := filepath.Join(dir, "down.hcl")
	src := "block \"down\" {\n  module = \"down.wasm\"\n  retry {\n    max_attempts = 4\n    backoff_initial = \"1ms\"\n    backoff_max = \"1ms\"\n  }\n}\n"
	if err := os.WriteFile(m, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	if r := runCLI(t, "", "--log-level", "off", "run", "--no-cache", "--manifest", m); r.res.Attempts != 4 {
		t.Fatalf("manifest: attempts %d\n%s", r.res.Attempts, r.stderr)
	}
	if r := runCLI(t, "", "--log-level", "off", "run", "--no-cache", "--manifest", m, "--max-attempts", "2"); r.res.Attempts != 2 {
		t.Fatalf("flag over manifest: attempts %d", r.res.Attempts)
	}
}

func TestRun_retryFlagsInvalid(t *testing.T) {
	loop := fixture(t, "loop")
	for _, args := range [][]string{
		{"--max-attempts", "0"},
		{"--backoff-initial", "0s"},
		{"--backoff-multiplier", "0.5"},
		{"--backoff-initial", "2s", "--backoff-max", "1s"},
		{"--non-retryable", "teapot"},
		{"--total-deadline", "-1s"},
	} {
		r := runCLI(t, "", append(append([]string{"run"}, args...), loop)...)
		if r.code != exitUsage || r.stdout != "" || strings.Count(strings.TrimSpace(r.stderr), "\n") != 0 {
			t.Errorf("%v: exit %d stderr %q", args, r.code, r.stderr)
		}
	}
}
