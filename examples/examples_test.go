//go:build !wasip1

package examples_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/blockhost/blockhost/abi"
	"github.com/blockhost/blockhost/host"
	"github.com/blockhost/blockhost/internal/testwasm"
)

// lockedBuffer is a log sink shared by parallel subtests.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// records returns the JSON log records of one step.
func (b *lockedBuffer) records(t *testing.T, stepID string) []map[string]any {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []map[string]any
	for line := range strings.SplitSeq(b.buf.String(), "\n") {
		if line == "" {
			continue
		}
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("log line is not JSON: %v: %q", err, line)
		}
		if rec["step_id"] == stepID {
			out = append(out, rec)
		}
	}
	return out
}

// load builds an example — a Go package or a .wat file — and loads it.
func load(t *testing.T, rt *host.Runtime, name string) *host.Block {
	t.Helper()
	dir := filepath.Join(testwasm.ModuleRoot(t), "examples", name)
	var wasm []byte
	if wat := filepath.Join(dir, name+".wat"); fileExists(wat) {
		wasm = testwasm.WAT(t, wat)
	} else {
		wasm = testwasm.Go(t, dir)
	}
	b, err := rt.Load(context.Background(), name, wasm)
	if err != nil {
		t.Fatalf("load %s: %v", name, err)
	}
	return b
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// testCacheDir is the compilation cache the tests share across runs,
// one directory per wazero version. wazero keys its cache by its own
// version, which it cannot find in a test binary (it reads "dev" for every
// release), so without the version in the path a wazero upgrade would load
// code compiled by the old one.
func testCacheDir(t testing.TB) string {
	t.Helper()
	gomod, err := os.ReadFile(filepath.Join(testwasm.ModuleRoot(t), "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.SplitSeq(string(gomod), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "github.com/tetratelabs/wazero" {
			return filepath.Join(os.TempDir(), "blockhost-test-cache", "wazero-"+f[1])
		}
	}
	t.Fatal("go.mod does not require github.com/tetratelabs/wazero")
	return ""
}

// TestExamples runs every example end to end through host.Runtime and
// checks the result its README promises. Compiling Go modules is slow
// under -race, so the runtime is shared and keeps compiled code in a
// cache directory that later runs of the tests reuse.
func TestExamples(t *testing.T) {
	logs := &lockedBuffer{}
	cfg := host.NewRuntimeConfig().
		WithCacheDir(testCacheDir(t)).
		WithLogger(hclog.New(&hclog.LoggerOptions{Output: logs, JSONFormat: true, Level: hclog.Trace}))
	rt, err := host.NewRuntime(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rt.Close(context.Background()) })

	tests := []struct {
		name    string
		block   string
		input   string
		limits  host.Limits
		cancel  time.Duration // cancel the step's context after this long
		status  abi.Status
		code    abi.Code
		class   abi.Class
		exit    uint32 // the guest's exit code, when not 0
		output  string // output as JSON
		text    string // output as text
		logs    func(t *testing.T, recs []map[string]any)
		timeBox time.Duration // the step must end within this
	}{
		{
			name: "hello greets", block: "hello", input: `{"name":"ana"}`,
			status: abi.StatusSuccess, output: `{"greeting":"hello, ana"}`,
			logs: func(t *testing.T, recs []map[string]any) {
				for _, r := range recs {
					if r["@message"] == "greeting" && r["name"] == "ana" && r["block"] == "hello" && r["@level"] == "info" {
						return
					}
				}
				t.Errorf("no info record greeting name=ana block=hello in %v", recs)
			},
		},
		{
			name: "hello without a name", block: "hello", input: `{}`,
			status: abi.StatusError, code: abi.CodeMissingRequiredField, class: abi.ClassPermanent,
		},
		{
			name: "wasi-echo upper-cases", block: "wasi-echo", input: "héllo, wörld",
			status: abi.StatusSuccess, text: "HÉLLO, WÖRLD",
			logs: func(t *testing.T, recs []map[string]any) {
				for _, r := range recs {
					if r["@message"] == "wasi-echo: done" && r["stream"] == "stderr" {
						return
					}
				}
				t.Errorf("standard error not logged: %v", recs)
			},
		},
		{
			name: "wasi-echo of nothing", block: "wasi-echo",
			status: abi.StatusError, code: abi.CodeExecutionFailed, class: abi.ClassPermanent, exit: 3,
		},
		{
			name: "loop times out", block: "loop", limits: host.Limits{Timeout: 200 * time.Millisecond},
			status: abi.StatusTimeout, code: abi.CodeCancelledByTimeout, class: abi.ClassPermanent,
			timeBox: 2 * time.Second,
		},
		{
			name: "sleep times out", block: "sleep", limits: host.Limits{Timeout: 200 * time.Millisecond},
			status: abi.StatusTimeout, code: abi.CodeCancelledByTimeout, class: abi.ClassPermanent,
			timeBox: 2 * time.Second,
		},
		{
			name: "sleep cancelled", block: "sleep", cancel: 200 * time.Millisecond,
			status: abi.StatusCancelled, code: abi.CodeCancelledByUser, class: abi.ClassPermanent,
			timeBox: 2 * time.Second,
		},
		{
			name: "trap", block: "trap",
			status: abi.StatusError, code: abi.CodeExecutionFailed, class: abi.ClassPermanent,
		},
		{
			name: "startloop times out", block: "startloop", limits: host.Limits{Timeout: 200 * time.Millisecond},
			status: abi.StatusTimeout, code: abi.CodeCancelledByTimeout, class: abi.ClassPermanent,
			timeBox: 2 * time.Second,
		},
		{
			name: "membomb hits the memory cap", block: "membomb", limits: host.Limits{Memory: 32 << 20},
			status: abi.StatusError, code: abi.CodeQuotaExceeded, class: abi.ClassPermanent,
		},
		{
			name: "flaky is retryable", block: "flaky",
			status: abi.StatusError, code: abi.CodeResourceUnavailable, class: abi.ClassRetryable,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := load(t, rt, tc.block)
			ctx := context.Background()
			if tc.cancel > 0 {
				c, cancel := context.WithCancelCause(ctx)
				defer cancel(nil)
				time.AfterFunc(tc.cancel, func() { cancel(host.ErrCancelled) })
				ctx = c
			}
			stepID := "examples-" + strings.ReplaceAll(tc.name, " ", "-")
			start := time.Now()
			res := b.Run(ctx, host.Step{ID: stepID, Input: []byte(tc.input), Limits: tc.limits})
			took := time.Since(start)

			if res.Status != tc.status {
				t.Fatalf("status %s, want %s (error %+v)", res.Status, tc.status, res.Error)
			}
			if tc.timeBox > 0 && took > tc.timeBox {
				t.Errorf("step took %v, want at most %v", took, tc.timeBox)
			}
			if res.StepID != stepID || res.Block != tc.block || res.Attempts != 1 {
				t.Errorf("bookkeeping: step %q block %q attempts %d", res.StepID, res.Block, res.Attempts)
			}
			if tc.status == abi.StatusSuccess {
				if res.Error != nil {
					t.Errorf("error %+v on success", res.Error)
				}
			} else {
				e := res.Error
				if e == nil {
					t.Fatal("no error")
				}
				if e.Code != tc.code || e.Name != tc.code.Name() || e.Class != tc.class {
					t.Errorf("error %s (%q) %s, want %s %s; message %q", e.Code, e.Name, e.Class, tc.code, tc.class, e.Message)
				}
				switch {
				case tc.exit == 0 && e.ExitCode != nil:
					t.Errorf("exit code %d, want none", *e.ExitCode)
				case tc.exit != 0 && (e.ExitCode == nil || *e.ExitCode != tc.exit):
					t.Errorf("exit code %v, want %d", e.ExitCode, tc.exit)
				}
			}
			if tc.output != "" {
				if !json.Valid(res.Output) || canonical(t, string(res.Output)) != canonical(t, tc.output) {
					t.Errorf("output %s, want %s", res.Output, tc.output)
				}
			} else if len(res.Output) != 0 {
				t.Errorf("unexpected output %s", res.Output)
			}
			gotText := ""
			if res.OutputText != nil {
				gotText = *res.OutputText
			}
			if gotText != tc.text {
				t.Errorf("output_text %q, want %q", gotText, tc.text)
			}
			if res.Usage.BytesIn != uint64(len(tc.input)) {
				t.Errorf("bytes_in %d, want %d", res.Usage.BytesIn, len(tc.input))
			}
			if tc.logs != nil {
				tc.logs(t, logs.records(t, stepID))
			}
		})
	}
}

// canonical re-encodes JSON text with sorted keys and no spaces.
func canonical(t *testing.T, s string) string {
	t.Helper()
	var v any
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(v)
	return string(b)
}
