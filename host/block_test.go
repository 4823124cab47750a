package host_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/blockhost/blockhost/abi"
	"github.com/blockhost/blockhost/host"
	"github.com/blockhost/blockhost/host/engine"
	"github.com/blockhost/blockhost/internal/testwasm"
)

// newRuntime returns a runtime on the default engine.
func newRuntime(t *testing.T) *host.Runtime {
	t.Helper()
	rt, err := host.NewRuntime(context.Background(), host.NewRuntimeConfig())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rt.Close(context.Background()) })
	return rt
}

// forEachEngine runs f once for every registered engine that this build
// can run, as a subtest named after the engine, with a runtime on it.
func forEachEngine(t *testing.T, f func(t *testing.T, rt *host.Runtime)) {
	t.Helper()
	for _, name := range engine.Names() {
		t.Run(name, func(t *testing.T) {
			rt, err := host.NewRuntime(context.Background(), host.NewRuntimeConfig().WithEngine(name))
			if errors.Is(err, engine.ErrUnavailable) {
				t.Skip(err)
			}
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { rt.Close(context.Background()) })
			f(t, rt)
		})
	}
}

func load(t *testing.T, rt *host.Runtime, fixture string) *host.Block {
	t.Helper()
	b, err := rt.Load(context.Background(), fixture, testwasm.WAT(t, filepath.Join("testdata", fixture+".wat")))
	if err != nil {
		t.Fatalf("load %s: %v", fixture, err)
	}
	return b
}

func TestBlock_statuses(t *testing.T) {
	forEachEngine(t, func(t *testing.T, rt *host.Runtime) {
		tests := []struct {
			fixture   string
			input     string
			limits    host.Limits
			status    abi.Status
			code      abi.Code
			class     abi.Class
			output    string
			outText   string
			exitCode  uint32
			msgSubstr string
		}{
			{fixture: "echo", input: `{"a":1}`, status: abi.StatusSuccess, output: `{"a":1}`},
			{fixture: "echo", input: "plain text", status: abi.StatusSuccess, outText: "plain text"},
			{fixture: "reactor", status: abi.StatusSuccess, outText: "initialized"},
			{fixture: "wasiecho", input: `"hi"`, status: abi.StatusSuccess, output: `"hi"`},
			{fixture: "wasiecho", status: abi.StatusError, code: abi.CodeExecutionFailed, exitCode: 7, msgSubstr: "exited with code 7"},
			{fixture: "loop", limits: host.Limits{Timeout: 100 * time.Millisecond}, status: abi.StatusTimeout, code: abi.CodeCancelledByTimeout, msgSubstr: "100ms"},
			{fixture: "startloop", limits: host.Limits{Timeout: 100 * time.Millisecond}, status: abi.StatusTimeout, code: abi.CodeCancelledByTimeout},
			{fixture: "initloop", limits: host.Limits{Timeout: 100 * time.Millisecond}, status: abi.StatusTimeout, code: abi.CodeCancelledByTimeout},
			{fixture: "recurse", limits: host.Limits{Timeout: 100 * time.Millisecond}, status: abi.StatusTimeout, code: abi.CodeCancelledByTimeout},
			{fixture: "wasisleep", limits: host.Limits{Timeout: 100 * time.Millisecond}, status: abi.StatusTimeout, code: abi.CodeCancelledByTimeout},
			{fixture: "trap", status: abi.StatusError, code: abi.CodeExecutionFailed, msgSubstr: "unreachable"},
			{fixture: "overflow", status: abi.StatusError, code: abi.CodeExecutionFailed, msgSubstr: "stack overflow"},
			{fixture: "membomb", limits: host.Limits{Memory: 32 << 20}, status: abi.StatusError, code: abi.CodeQuotaExceeded, msgSubstr: "32 MiB"},
			{fixture: "bigmem", limits: host.Limits{Memory: 32 << 20}, status: abi.StatusError, code: abi.CodeQuotaExceeded, msgSubstr: "initial memory"},
			{fixture: "bigoutput", status: abi.StatusError, code: abi.CodeQuotaExceeded, msgSubstr: "output limit of 1 MiB"},
			{fixture: "errorset", status: abi.StatusError, code: abi.CodeResourceUnavailable, class: abi.ClassRetryable, msgSubstr: "backend is down"},
		}
		for _, tc := range tests {
			t.Run(tc.fixture+"/"+string(tc.status), func(t *testing.T) {
				b := load(t, rt, tc.fixture)
				start := time.Now()
				res := b.Run(context.Background(), host.Step{Input: []byte(tc.input), Limits: tc.limits})
				if res.Status != tc.status {
					t.Fatalf("status %q, want %q (error %+v)", res.Status, tc.status, res.Error)
				}
				if tc.limits.Timeout > 0 && time.Since(start) > tc.limits.Timeout+time.Second {
					t.Errorf("step took %v with a %v timeout", time.Since(start), tc.limits.Timeout)
				}
				if tc.status == abi.StatusSuccess {
					if res.Error != nil {
						t.Errorf("unexpected error %+v", res.Error)
					}
				} else {
					if res.Error == nil {
						t.Fatal("no error on a failed step")
					}
					if res.Error.Code != tc.code || res.Error.Name != tc.code.Name() || res.Error.Class != tc.class {
						t.Errorf("error %s/%s/%s, want %s/%s", res.Error.Code, res.Error.Name, res.Error.Class, tc.code, tc.class)
					}
					if !strings.Contains(res.Error.Message, tc.msgSubstr) {
						t.Errorf("message %q lacks %q", res.Error.Message, tc.msgSubstr)
					}
					if tc.exitCode != 0 && (res.Error.ExitCode == nil || *res.Error.ExitCode != tc.exitCode) {
						t.Errorf("exit code %v, want %d", res.Error.ExitCode, tc.exitCode)
					}
				}
				if string(res.Output) != tc.output {
					t.Errorf("output %q, want %q", res.Output, tc.output)
				}
				if got := deref(res.OutputText); got != tc.outText {
					t.Errorf("output_text %q, want %q", got, tc.outText)
				}
				if res.Attempts != 1 || res.RetriesUsed != 0 || res.StepID == "" || res.Block != tc.fixture {
					t.Errorf("bookkeeping: %+v", res)
				}
				if res.Usage.BytesIn != uint64(len(tc.input)) {
					t.Errorf("bytes_in %d, want %d", res.Usage.BytesIn, len(tc.input))
				}
			})
		}
	})
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

func TestBlock_usage(t *testing.T) {
	forEachEngine(t, func(t *testing.T, rt *host.Runtime) {
		b := load(t, rt, "echo")
		res := b.Run(context.Background(), host.Step{ID: "s1", Input: []byte(`[1,2,3]`)})
		if res.Status != abi.StatusSuccess {
			t.Fatalf("status %s: %+v", res.Status, res.Error)
		}
		u := res.Usage
		if res.StepID != "s1" {
			t.Errorf("step id %q", res.StepID)
		}
		if u.BytesIn != 7 || u.BytesOut != 7 {
			t.Errorf("bytes in/out %d/%d, want 7/7", u.BytesIn, u.BytesOut)
		}
		if u.HostCalls != 4 {
			t.Errorf("host calls %d, want 4", u.HostCalls)
		}
		if u.PeakMemoryBytes != 2*65536 {
			t.Errorf("peak memory %d, want %d", u.PeakMemoryBytes, 2*65536)
		}
		if u.WallMS <= 0 || res.LatencyMS < u.WallMS {
			t.Errorf("wall %v latency %v", u.WallMS, res.LatencyMS)
		}
	})
}

func TestBlock_cancelledNotTimeout(t *testing.T) {
	forEachEngine(t, func(t *testing.T, rt *host.Runtime) {
		for _, fixture := range []string{"loop", "wasisleep", "startloop"} {
			t.Run(fixture, func(t *testing.T) {
				b := load(t, rt, fixture)
				ctx, cancel := context.WithCancelCause(context.Background())
				time.AfterFunc(50*time.Millisecond, func() { cancel(host.ErrCancelled) })
				// The step also has a timeout, later than the cancellation: the
				// recorded cause, not the order errors arrive in, decides.
				res := b.Run(ctx, host.Step{Limits: host.Limits{Timeout: 10 * time.Second}})
				if res.Status != abi.StatusCancelled || res.Error.Code != abi.CodeCancelledByUser {
					t.Fatalf("status %s error %+v, want cancelled", res.Status, res.Error)
				}
			})
		}
	})
}

func TestBlock_parentDeadlineIsTimeout(t *testing.T) {
	forEachEngine(t, func(t *testing.T, rt *host.Runtime) {
		b := load(t, rt, "loop")
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		res := b.Run(ctx, host.Step{})
		if res.Status != abi.StatusTimeout {
			t.Fatalf("status %s, want timeout", res.Status)
		}
	})
}

func TestBlock_alreadyCancelled(t *testing.T) {
	forEachEngine(t, func(t *testing.T, rt *host.Runtime) {
		b := load(t, rt, "echo")
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		res := b.Run(ctx, host.Step{Input: []byte("x")})
		if res.Status != abi.StatusCancelled || res.Usage.HostCalls != 0 {
			t.Fatalf("status %s host calls %d, want cancelled before running", res.Status, res.Usage.HostCalls)
		}
	})
}

func TestRuntime_loadErrors(t *testing.T) {
	forEachEngine(t, func(t *testing.T, rt *host.Runtime) {
		tests := []struct {
			fixture string
			is      error
			substr  []string
		}{
			{"badimport", host.ErrUnknownImport, []string{`"blockhost"."nope"`}},
			{"badsig", host.ErrUnknownImport, []string{`"blockhost"."check"`, "(i32) -> (i32)", "() -> (i32)"}},
			{"othermodule", host.ErrUnknownImport, []string{`"env"."abort"`}},
			{"abiv2", host.ErrABIVersion, []string{"ABI v2", "ABI v1"}},
			{"noversion", host.ErrABIVersion, []string{"declares no ABI version", "blockhost_abi_v1"}},
			{"noentry", host.ErrInvalidModule, []string{"no entry point"}},
		}
		for _, tc := range tests {
			t.Run(tc.fixture, func(t *testing.T) {
				_, err := rt.Load(context.Background(), tc.fixture+".wasm", testwasm.WAT(t, filepath.Join("testdata", tc.fixture+".wat")))
				if !errors.Is(err, tc.is) {
					t.Fatalf("error %v, want %v", err, tc.is)
				}
				for _, s := range append(tc.substr, tc.fixture+".wasm") {
					if !strings.Contains(err.Error(), s) {
						t.Errorf("error %q does not name %q", err, s)
					}
				}
			})
		}
		t.Run("garbage", func(t *testing.T) {
			_, err := rt.Load(context.Background(), "junk.wasm", []byte("this is not wasm"))
			if !errors.Is(err, host.ErrInvalidModule) || !strings.Contains(err.Error(), "junk.wasm") {
				t.Fatalf("error %v", err)
			}
		})
		t.Run("versionError", func(t *testing.T) {
			_, err := rt.Load(context.Background(), "v2", testwasm.WAT(t, filepath.Join("testdata", "abiv2.wat")))
			var ve *host.VersionError
			if !errors.As(err, &ve) || len(ve.Declared) != 1 || ve.Declared[0] != 2 || ve.Host != abi.Version {
				t.Fatalf("error %#v", err)
			}
		})
	})
}

func TestNewRuntime_unknownEngine(t *testing.T) {
	_, err := host.NewRuntime(context.Background(), host.NewRuntimeConfig().WithEngine("nope"))
	if !errors.Is(err, host.ErrUnknownEngine) || !strings.Contains(err.Error(), "wazero") {
		t.Fatalf("error %v", err)
	}
}

func TestRuntime_diskCache(t *testing.T) {
	forEachEngine(t, func(t *testing.T, rt *host.Runtime) {
		testDiskCache(t, rt.Engine())
	})
}

func testDiskCache(t *testing.T, engineName string) {
	dir := t.TempDir()
	wasm := testwasm.WAT(t, filepath.Join("testdata", "echo.wat"))
	for i := range 2 {
		rt, err := host.NewRuntime(context.Background(), host.NewRuntimeConfig().WithEngine(engineName).WithCacheDir(dir))
		if err != nil {
			t.Fatal(err)
		}
		b, err := rt.Load(context.Background(), "echo", wasm)
		if err != nil {
			t.Fatal(err)
		}
		if res := b.Run(context.Background(), host.Step{Input: []byte("1")}); res.Status != abi.StatusSuccess {
			t.Fatalf("run %d: %+v", i, res)
		}
		rt.Close(context.Background())
		entries, _ := os.ReadDir(dir)
		if len(entries) == 0 {
			t.Fatalf("run %d: cache dir is empty", i)
		}
	}
}
