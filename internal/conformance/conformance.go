// Package conformance is the one suite of behaviours every blockhost
// engine must pass: the step contract of docs/abi.md, checked through
// host.Runtime the way an operator meets it — statuses, error codes and
// classes, limits, interruption of every kind with timeout and
// cancellation told apart by their cause, host-call results once a step
// is over, load-time errors, WASI command modules (including real
// programs built by other toolchains), and usage figures.
//
// Run checks one engine; Agree runs the same steps on several engines and
// requires identical results, so that an operator can switch engines
// without any block or result changing. The package's own test runs both
// for every registered engine; an engine that this build cannot run
// (engine.ErrUnavailable, such as wasmtime without cgo) is skipped.
package conformance

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/blockhost/blockhost/abi"
	"github.com/blockhost/blockhost/host"
	"github.com/blockhost/blockhost/host/engine"
	"github.com/blockhost/blockhost/internal/testwasm"
)

// lateBound is how long after its deadline or cancellation a step may
// end. The engines do far better (see docs/engines.md); the bound is loose
// because tests share the machine with other tests under the race
// detector.
const lateBound = time.Second

// Suite runs steps on one engine and keeps the runtime's log records.
type Suite struct {
	Engine string
	rt     *host.Runtime
	logs   *logBuffer
}

// NewSuite creates a runtime on the named engine, closed when t ends. It
// skips t when the engine cannot run in this build.
func NewSuite(t testing.TB, engineName string) *Suite {
	t.Helper()
	s, err := newSuite(t, engineName)
	if errors.Is(err, engine.ErrUnavailable) {
		t.Skipf("engine %s: %v", engineName, err)
	}
	if err != nil {
		t.Fatalf("engine %s: %v", engineName, err)
	}
	return s
}

func newSuite(t testing.TB, engineName string) (*Suite, error) {
	logs := &logBuffer{}
	logger := hclog.New(&hclog.LoggerOptions{Output: logs, Level: hclog.Trace, JSONFormat: true})
	rt, err := host.NewRuntime(context.Background(), host.NewRuntimeConfig().WithEngine(engineName).WithLogger(logger))
	if err != nil {
		return nil, err
	}
	t.Cleanup(func() { rt.Close(context.Background()) })
	return &Suite{Engine: engineName, rt: rt, logs: logs}, nil
}

// Runtime is the suite's runtime.
func (s *Suite) Runtime() *host.Runtime { return s.rt }

// Run checks every behaviour of the step contract on the named engine.
func Run(t *testing.T, engineName string) {
	s := NewSuite(t, engineName)
	t.Run("statuses", s.testStatuses)
	t.Run("interruption", s.testInterruption)
	t.Run("cancelledNotTimeout", s.testCancelledNotTimeout)
	t.Run("afterEnd", s.testAfterEnd)
	t.Run("loadErrors", s.testLoadErrors)
	t.Run("limits", s.testLimits)
	t.Run("usage", s.testUsage)
	t.Run("wasi", s.testWASI)
	t.Run("goBlocks", s.testGoBlocks)
	t.Run("thirdParty", s.testThirdParty)
	t.Run("concurrent", s.testConcurrent)
}

// Fixture returns the bytes of a .wat fixture: this package's testdata
// first, then the host's.
func Fixture(t testing.TB, name string) []byte {
	t.Helper()
	return testwasm.WAT(t, FixturePath(t, name))
}

// FixturePath returns the .wat file of a fixture.
func FixturePath(t testing.TB, name string) string {
	t.Helper()
	root := testwasm.ModuleRoot(t)
	own := filepath.Join(root, "internal", "conformance", "testdata", name+".wat")
	if fileExists(own) {
		return own
	}
	return filepath.Join(root, "host", "testdata", name+".wat")
}

// Load compiles a fixture into a block named after it.
func (s *Suite) Load(t testing.TB, fixture string) *host.Block {
	t.Helper()
	return s.LoadBytes(t, fixture, Fixture(t, fixture))
}

// LoadBytes compiles wasm into a block.
func (s *Suite) LoadBytes(t testing.TB, name string, wasm []byte) *host.Block {
	t.Helper()
	b, err := s.rt.Load(context.Background(), name, wasm)
	if err != nil {
		t.Fatalf("%s: load %s: %v", s.Engine, name, err)
	}
	return b
}

// Want is what a step's result must be. Zero fields are not checked,
// except that a success must carry no error and a failure must.
type Want struct {
	Status abi.Status
	Code   abi.Code
	Class  abi.Class
	// Msg must be in the error's message.
	Msg string
	// ExitCode, when set, must be the error's exit code.
	ExitCode *uint32
	// Output is the exact output as `output` (JSON), OutputText as
	// `output_text`, OutputBase64 as decoded `output_base64`; NoOutput
	// requires none of the three.
	Output       string
	OutputText   string
	OutputBase64 []byte
	NoOutput     bool
}

func exit(code uint32) *uint32 { return &code }

// Check compares a result with w.
func Check(t testing.TB, engineName string, res *abi.StepResult, w Want) {
	t.Helper()
	if res.Status != w.Status {
		t.Fatalf("%s: status %q, want %q (error %+v)", engineName, res.Status, w.Status, res.Error)
	}
	if w.Status == abi.StatusSuccess {
		if res.Error != nil {
			t.Errorf("%s: success with error %+v", engineName, res.Error)
		}
	} else {
		if res.Error == nil {
			t.Fatalf("%s: %s step has no error", engineName, res.Status)
		}
		if res.Error.Code != w.Code || res.Error.Name != w.Code.Name() || res.Error.Class != w.Class {
			t.Errorf("%s: error %d/%s/%s, want %d/%s/%s (message %q)", engineName,
				res.Error.Code, res.Error.Name, res.Error.Class, w.Code, w.Code.Name(), w.Class, res.Error.Message)
		}
		if !strings.Contains(res.Error.Message, w.Msg) {
			t.Errorf("%s: error message %q lacks %q", engineName, res.Error.Message, w.Msg)
		}
		if w.ExitCode != nil && (res.Error.ExitCode == nil || *res.Error.ExitCode != *w.ExitCode) {
			t.Errorf("%s: exit code %v, want %d", engineName, res.Error.ExitCode, *w.ExitCode)
		}
		if w.ExitCode == nil && res.Error.ExitCode != nil {
			t.Errorf("%s: unexpected exit code %d", engineName, *res.Error.ExitCode)
		}
	}
	if w.Output != "" && string(res.Output) != w.Output {
		t.Errorf("%s: output %s, want %s", engineName, res.Output, w.Output)
	}
	if w.OutputText != "" && deref(res.OutputText) != w.OutputText {
		t.Errorf("%s: output_text %q, want %q", engineName, deref(res.OutputText), w.OutputText)
	}
	if w.OutputBase64 != nil && !bytes.Equal(res.OutputBase64, w.OutputBase64) {
		t.Errorf("%s: output_base64 %q, want %q", engineName, res.OutputBase64, w.OutputBase64)
	}
	if w.NoOutput && (res.Output != nil || res.OutputText != nil || res.OutputBase64 != nil) {
		t.Errorf("%s: unexpected output %s / %q / %q", engineName, res.Output, deref(res.OutputText), res.OutputBase64)
	}
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// Step is one step of a table: a fixture, its input and limits, and what
// must come of it.
type Step struct {
	Name    string
	Fixture string
	Input   string
	Args    []string
	Env     map[string]string
	Limits  host.Limits
	Want    Want
}

func (st Step) step() host.Step {
	return host.Step{Input: []byte(st.Input), Args: st.Args, Limits: st.Limits, Grants: host.Grants{Env: st.Env}}
}

// statusSteps are the steps whose results must be the same on every
// engine; Agree runs them too.
var statusSteps = []Step{
	{Name: "json", Fixture: "echo", Input: `{"a":1}`, Want: Want{Status: abi.StatusSuccess, Output: `{"a":1}`}},
	{Name: "text", Fixture: "echo", Input: "plain text", Want: Want{Status: abi.StatusSuccess, OutputText: "plain text"}},
	{Name: "binary", Fixture: "echo", Input: "\xff\x00\xfe", Want: Want{Status: abi.StatusSuccess, OutputBase64: []byte("\xff\x00\xfe")}},
	{Name: "empty", Fixture: "echo", Want: Want{Status: abi.StatusSuccess, NoOutput: true}},
	{Name: "reactor", Fixture: "reactor", Want: Want{Status: abi.StatusSuccess, OutputText: "initialized"}},
	{Name: "command", Fixture: "wasiecho", Input: `"hi"`, Want: Want{Status: abi.StatusSuccess, Output: `"hi"`}},
	{Name: "exitCode", Fixture: "wasiecho", Want: Want{Status: abi.StatusError, Code: abi.CodeExecutionFailed, Class: abi.ClassPermanent, Msg: "exited with code 7", ExitCode: exit(7)}},
	{Name: "exitCodeLarge", Fixture: "bigexit", Want: Want{Status: abi.StatusError, Code: abi.CodeExecutionFailed, Class: abi.ClassPermanent, Msg: "exited with code 300", ExitCode: exit(300)}},
	{Name: "errorSet", Fixture: "errorset", Want: Want{Status: abi.StatusError, Code: abi.CodeResourceUnavailable, Class: abi.ClassRetryable, Msg: "backend is down"}},
	{Name: "unreachable", Fixture: "trap", Want: Want{Status: abi.StatusError, Code: abi.CodeExecutionFailed, Class: abi.ClassPermanent, Msg: "wasm trap: unreachable"}},
	{Name: "outOfBounds", Fixture: "oob", Want: Want{Status: abi.StatusError, Code: abi.CodeExecutionFailed, Class: abi.ClassPermanent, Msg: "wasm trap: out of bounds memory access"}},
	{Name: "divideByZero", Fixture: "divzero", Want: Want{Status: abi.StatusError, Code: abi.CodeExecutionFailed, Class: abi.ClassPermanent, Msg: "wasm trap: integer divide by zero"}},
	{Name: "stackOverflow", Fixture: "overflow", Want: Want{Status: abi.StatusError, Code: abi.CodeExecutionFailed, Class: abi.ClassPermanent, Msg: "wasm trap: stack overflow"}},
	{Name: "memoryGrown", Fixture: "membomb", Limits: host.Limits{Memory: 32 << 20}, Want: Want{Status: abi.StatusError, Code: abi.CodeQuotaExceeded, Class: abi.ClassPermanent, Msg: "linear memory would grow past the memory limit of 32 MiB"}},
	{Name: "memoryInitial", Fixture: "bigmem", Limits: host.Limits{Memory: 32 << 20}, Want: Want{Status: abi.StatusError, Code: abi.CodeQuotaExceeded, Class: abi.ClassPermanent, Msg: "initial memory of 64 MiB is over the memory limit of 32 MiB"}},
	{Name: "memoryAtLimit", Fixture: "grow", Input: strings.Repeat("p", 16), Limits: host.Limits{Memory: 1 << 20}, Want: Want{Status: abi.StatusSuccess, OutputText: "grown"}},
	{Name: "memoryPastLimit", Fixture: "grow", Input: strings.Repeat("p", 17), Limits: host.Limits{Memory: 1 << 20}, Want: Want{Status: abi.StatusError, Code: abi.CodeQuotaExceeded, Class: abi.ClassPermanent, Msg: "past the memory limit of 1 MiB"}},
	{Name: "memoryOwnMaximum", Fixture: "growmax", Want: Want{Status: abi.StatusError, Code: abi.CodeExecutionFailed, Class: abi.ClassPermanent, Msg: "wasm trap: unreachable"}},
	{Name: "outputLimit", Fixture: "bigoutput", Want: Want{Status: abi.StatusError, Code: abi.CodeQuotaExceeded, Class: abi.ClassPermanent, Msg: "output limit of 1 MiB", NoOutput: true}},
	{Name: "stdoutLimit", Fixture: "wasiecho", Input: strings.Repeat("s", 2048), Limits: host.Limits{Output: 1024}, Want: Want{Status: abi.StatusError, Code: abi.CodeQuotaExceeded, Class: abi.ClassPermanent, Msg: "output limit of 1 KiB", NoOutput: true}},
	{Name: "manyWrites", Fixture: "manywrites", Want: Want{Status: abi.StatusSuccess, OutputText: strings.Repeat("0123456789", 1000)}},
	{Name: "env", Fixture: "wasienv", Env: map[string]string{"A": "1", "B": "two"}, Want: Want{Status: abi.StatusSuccess, OutputText: "A=1\x00B=two\x00"}},
	{Name: "noEnv", Fixture: "wasienv", Want: Want{Status: abi.StatusSuccess, NoOutput: true}},
	{Name: "hiddenMemory", Fixture: "hiddenmem", Want: Want{Status: abi.StatusSuccess, OutputText: "ok"}},
	{Name: "napRelative", Fixture: "nap", Input: "r", Want: Want{Status: abi.StatusSuccess, OutputText: "woke"}},
	{Name: "napAbsolute", Fixture: "nap", Input: "A", Want: Want{Status: abi.StatusSuccess, OutputText: "notsup"}},
	{Name: "napRealtime", Fixture: "nap", Input: "W", Want: Want{Status: abi.StatusSuccess, OutputText: "notsup"}},
}

func (s *Suite) testStatuses(t *testing.T) {
	for _, st := range statusSteps {
		t.Run(st.Name, func(t *testing.T) {
			res := s.Load(t, st.Fixture).Run(context.Background(), st.step())
			Check(t, s.Engine, res, st.Want)
			if res.Attempts != 1 || res.RetriesUsed != 0 || res.StepID == "" || res.Block != st.Fixture {
				t.Errorf("%s: bookkeeping %+v", s.Engine, res)
			}
			if res.Usage.BytesIn != uint64(len(st.Input)) {
				t.Errorf("%s: bytes_in %d, want %d", s.Engine, res.Usage.BytesIn, len(st.Input))
			}
		})
	}
}

// interruptSteps never end by themselves: each must end as timeout at its
// step timeout, or as cancelled when cancelled first.
var interruptSteps = []struct{ name, fixture, input string }{
	{"loop", "loop", ""},
	{"recursion", "recurse", ""},
	{"startFunction", "startloop", ""},
	{"initialize", "initloop", ""},
	{"wasiSleep", "wasisleep", ""},
	{"wasiSleepNap", "nap", "R"},
	{"afterEnd", "afterend", ""},
}

func (s *Suite) testInterruption(t *testing.T) {
	const timeout = 100 * time.Millisecond
	for _, tc := range interruptSteps {
		t.Run(tc.name, func(t *testing.T) {
			b := s.Load(t, tc.fixture)
			start := time.Now()
			res := b.Run(context.Background(), host.Step{Input: []byte(tc.input), Limits: host.Limits{Timeout: timeout}})
			took := time.Since(start)
			Check(t, s.Engine, res, Want{Status: abi.StatusTimeout, Code: abi.CodeCancelledByTimeout, Class: abi.ClassPermanent, Msg: "100ms timeout", NoOutput: true})
			if took < timeout || took > timeout+lateBound {
				t.Errorf("%s: step took %v with a %v timeout", s.Engine, took, timeout)
			}
		})
	}
	t.Run("parentDeadline", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		res := s.Load(t, "loop").Run(ctx, host.Step{})
		Check(t, s.Engine, res, Want{Status: abi.StatusTimeout, Code: abi.CodeCancelledByTimeout, Class: abi.ClassPermanent, Msg: "deadline"})
	})
}

func (s *Suite) testCancelledNotTimeout(t *testing.T) {
	for _, tc := range interruptSteps {
		t.Run(tc.name, func(t *testing.T) {
			b := s.Load(t, tc.fixture)
			ctx, cancel := context.WithCancelCause(context.Background())
			var cancelled time.Time
			timer := time.AfterFunc(50*time.Millisecond, func() {
				cancelled = time.Now()
				cancel(host.ErrCancelled)
			})
			defer timer.Stop()
			// The step's own timeout is close behind the cancellation: the
			// recorded cause, not the order errors arrive in, decides.
			res := b.Run(ctx, host.Step{Input: []byte(tc.input), Limits: host.Limits{Timeout: 60 * time.Millisecond}})
			ended := time.Now()
			Check(t, s.Engine, res, Want{Status: abi.StatusCancelled, Code: abi.CodeCancelledByUser, Class: abi.ClassPermanent, Msg: "step cancelled", NoOutput: true})
			if late := ended.Sub(cancelled); late > lateBound {
				t.Errorf("%s: step ended %v after its cancellation", s.Engine, late)
			}
		})
	}
	t.Run("beforeStart", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		res := s.Load(t, "echo").Run(ctx, host.Step{Input: []byte("x")})
		Check(t, s.Engine, res, Want{Status: abi.StatusCancelled, Code: abi.CodeCancelledByUser, Class: abi.ClassPermanent, NoOutput: true})
		if res.Usage.HostCalls != 0 {
			t.Errorf("%s: %d host calls in a step cancelled before it began", s.Engine, res.Usage.HostCalls)
		}
	})
}

// testAfterEnd runs afterend, whose guest keeps calling the host after the
// step is over and reports on standard error whether every call answered
// timeout (or cancelled) and did nothing. The report comes from guest code
// that runs after the step's end, which an engine may cut short at any
// interruption check; a run that ends before it reports is retried.
func (s *Suite) testAfterEnd(t *testing.T) {
	cases := []struct {
		name    string
		verdict string
		run     func(b *host.Block, id string) *abi.StepResult
		status  abi.Status
	}{
		{"timeout", "after-end: timeout ok", func(b *host.Block, id string) *abi.StepResult {
			return b.Run(context.Background(), host.Step{ID: id, Limits: host.Limits{Timeout: 50 * time.Millisecond}})
		}, abi.StatusTimeout},
		{"cancelled", "after-end: cancelled ok", func(b *host.Block, id string) *abi.StepResult {
			ctx, cancel := context.WithCancelCause(context.Background())
			t := time.AfterFunc(50*time.Millisecond, func() { cancel(host.ErrCancelled) })
			defer t.Stop()
			return b.Run(ctx, host.Step{ID: id})
		}, abi.StatusCancelled},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b := s.Load(t, "afterend")
			for attempt := range 5 {
				id := "afterend-" + tc.name + "-" + s.Engine + "-" + string(rune('0'+attempt))
				res := tc.run(b, id)
				if res.Status != tc.status {
					t.Fatalf("%s: status %s, want %s (error %+v)", s.Engine, res.Status, tc.status, res.Error)
				}
				if res.Error.Code == abi.CodeExecutionFailed || res.Output != nil || res.OutputText != nil {
					t.Fatalf("%s: a call after the end had an effect: %+v", s.Engine, res)
				}
				// The ABI calls after the end returned to the guest (docs/abi.md),
				// with no effect; the WASI fd_write that would report on them
				// did not: a WASI function entered after the end ends the run.
				for _, l := range s.logs.stepMessages(id) {
					if strings.HasPrefix(l, "after-end:") {
						t.Fatalf("%s: the guest's WASI write after the end happened: %q", s.Engine, l)
					}
				}
				// 1 + (loop checks) + 8 calls after the end.
				if res.Usage.HostCalls >= 9 {
					return
				}
			}
			t.Fatalf("%s: in 5 steps the guest never made its calls after the end", s.Engine)
		})
	}
}

func (s *Suite) testLoadErrors(t *testing.T) {
	tests := []struct {
		fixture string
		is      error
		substr  []string
	}{
		{"badimport", host.ErrUnknownImport, []string{`unknown import "blockhost"."nope"`}},
		{"badsig", host.ErrUnknownImport, []string{`"blockhost"."check"`, "(i32) -> (i32)", "() -> (i32)"}},
		{"othermodule", host.ErrUnknownImport, []string{`unknown import "env"."abort"`}},
		{"abiv2", host.ErrABIVersion, []string{"is built for ABI v2; this host speaks ABI v1"}},
		{"noversion", host.ErrABIVersion, []string{"declares no ABI version", "blockhost_abi_v1"}},
		{"noentry", host.ErrInvalidModule, []string{"no entry point"}},
	}
	for _, tc := range tests {
		t.Run(tc.fixture, func(t *testing.T) {
			_, err := s.rt.Load(context.Background(), tc.fixture+".wasm", Fixture(t, tc.fixture))
			if !errors.Is(err, tc.is) {
				t.Fatalf("%s: error %v, want %v", s.Engine, err, tc.is)
			}
			for _, sub := range append(tc.substr, tc.fixture+".wasm") {
				if !strings.Contains(err.Error(), sub) {
					t.Errorf("%s: error %q does not name %q", s.Engine, err, sub)
				}
			}
		})
	}
	t.Run("versionError", func(t *testing.T) {
		_, err := s.rt.Load(context.Background(), "v2", Fixture(t, "abiv2"))
		var ve *host.VersionError
		if !errors.As(err, &ve) || len(ve.Declared) != 1 || ve.Declared[0] != 2 || ve.Host != abi.Version {
			t.Fatalf("%s: error %#v", s.Engine, err)
		}
	})
	for _, garbage := range []struct{ name, bytes string }{
		{"text", "this is not wasm"},
		{"empty", ""},
		{"truncated", "\x00asm\x01\x00\x00\x00\x01\x05"},
	} {
		t.Run("garbage/"+garbage.name, func(t *testing.T) {
			_, err := s.rt.Load(context.Background(), "junk.wasm", []byte(garbage.bytes))
			if !errors.Is(err, host.ErrInvalidModule) || !strings.Contains(err.Error(), "junk.wasm") {
				t.Fatalf("%s: error %v", s.Engine, err)
			}
		})
	}
}

func (s *Suite) testLimits(t *testing.T) {
	// The memory cap is exact: a block may grow to the cap, not one page
	// past it, and reports the peak it reached.
	for _, tc := range []struct {
		name  string
		pages int
		cap   uint64
		ok    bool
	}{
		{"belowCap", 8, 1 << 20, true},
		{"atCap", 16, 1 << 20, true},
		{"pastCap", 17, 1 << 20, false},
		{"initialOverCap", 1, 32 << 10, false},
	} {
		t.Run("memory/"+tc.name, func(t *testing.T) {
			res := s.Load(t, "grow").Run(context.Background(), host.Step{Input: bytes.Repeat([]byte("p"), tc.pages), Limits: host.Limits{Memory: tc.cap}})
			if tc.ok {
				Check(t, s.Engine, res, Want{Status: abi.StatusSuccess, OutputText: "grown"})
				if want := uint64(tc.pages) * 65536; res.Usage.PeakMemoryBytes != want {
					t.Errorf("%s: peak memory %d, want %d", s.Engine, res.Usage.PeakMemoryBytes, want)
				}
				return
			}
			Check(t, s.Engine, res, Want{Status: abi.StatusError, Code: abi.CodeQuotaExceeded, Class: abi.ClassPermanent, NoOutput: true})
			if res.Usage.PeakMemoryBytes > tc.cap {
				t.Errorf("%s: peak memory %d is over the cap %d", s.Engine, res.Usage.PeakMemoryBytes, tc.cap)
			}
		})
	}
	t.Run("memory/bomb", func(t *testing.T) {
		res := s.Load(t, "membomb").Run(context.Background(), host.Step{Limits: host.Limits{Memory: 32 << 20}})
		Check(t, s.Engine, res, Want{Status: abi.StatusError, Code: abi.CodeQuotaExceeded, Class: abi.ClassPermanent})
		// 1 page and then 16 at a time: 497 pages fit under 32 MiB.
		if want := uint64(497 * 65536); res.Usage.PeakMemoryBytes != want {
			t.Errorf("%s: peak memory %d, want %d", s.Engine, res.Usage.PeakMemoryBytes, want)
		}
	})
	t.Run("output/exact", func(t *testing.T) {
		in := strings.Repeat("o", 1024)
		res := s.Load(t, "echo").Run(context.Background(), host.Step{Input: []byte(in), Limits: host.Limits{Output: 1024}})
		Check(t, s.Engine, res, Want{Status: abi.StatusSuccess, OutputText: in})
		res = s.Load(t, "echo").Run(context.Background(), host.Step{Input: []byte(in + "o"), Limits: host.Limits{Output: 1024}})
		Check(t, s.Engine, res, Want{Status: abi.StatusError, Code: abi.CodeQuotaExceeded, Class: abi.ClassPermanent, Msg: "output limit of 1 KiB", NoOutput: true})
	})
}

func (s *Suite) testUsage(t *testing.T) {
	t.Run("echo", func(t *testing.T) {
		res := s.Load(t, "echo").Run(context.Background(), host.Step{ID: "s1", Input: []byte(`[1,2,3]`)})
		Check(t, s.Engine, res, Want{Status: abi.StatusSuccess, Output: `[1,2,3]`})
		u := res.Usage
		if res.StepID != "s1" {
			t.Errorf("%s: step id %q", s.Engine, res.StepID)
		}
		if u.BytesIn != 7 || u.BytesOut != 7 {
			t.Errorf("%s: bytes in/out %d/%d, want 7/7", s.Engine, u.BytesIn, u.BytesOut)
		}
		if u.HostCalls != 4 {
			t.Errorf("%s: host calls %d, want 4", s.Engine, u.HostCalls)
		}
		if u.PeakMemoryBytes != 2*65536 {
			t.Errorf("%s: peak memory %d, want %d", s.Engine, u.PeakMemoryBytes, 2*65536)
		}
		if u.WallMS <= 0 || res.LatencyMS < u.WallMS {
			t.Errorf("%s: wall %v latency %v", s.Engine, u.WallMS, res.LatencyMS)
		}
	})
	t.Run("command", func(t *testing.T) {
		res := s.Load(t, "wasiecho").Run(context.Background(), host.Step{Input: []byte("12345")})
		Check(t, s.Engine, res, Want{Status: abi.StatusSuccess, Output: "12345"})
		if u := res.Usage; u.BytesIn != 5 || u.BytesOut != 5 || u.HostCalls != 0 || u.PeakMemoryBytes != 65536 {
			t.Errorf("%s: usage %+v", s.Engine, u)
		}
	})
	t.Run("hiddenMemory", func(t *testing.T) {
		res := s.Load(t, "hiddenmem").Run(context.Background(), host.Step{})
		Check(t, s.Engine, res, Want{Status: abi.StatusSuccess, OutputText: "ok"})
		if want := uint64(5 * 65536); res.Usage.PeakMemoryBytes != want {
			t.Errorf("%s: peak memory %d, want %d", s.Engine, res.Usage.PeakMemoryBytes, want)
		}
	})
	t.Run("errorKeepsOutput", func(t *testing.T) {
		// A block that fails on its own terms keeps what it wrote.
		res := s.Load(t, "wasiecho").Run(context.Background(), host.Step{})
		if res.Status != abi.StatusError || res.Usage.BytesOut != 0 {
			t.Errorf("%s: %+v", s.Engine, res)
		}
	})
}

func (s *Suite) testWASI(t *testing.T) {
	t.Run("stderrIsLogged", func(t *testing.T) {
		res := s.Load(t, "wasiecho").Run(context.Background(), host.Step{ID: "stderr-" + s.Engine, Input: []byte("x")})
		Check(t, s.Engine, res, Want{Status: abi.StatusSuccess, OutputText: "x"})
		if got := s.logs.stepMessages("stderr-" + s.Engine); !contains(got, "note") {
			t.Errorf("%s: log records %q lack the guest's stderr line", s.Engine, got)
		}
	})
	t.Run("sleepDuration", func(t *testing.T) {
		start := time.Now()
		res := s.Load(t, "nap").Run(context.Background(), host.Step{Input: []byte("r")})
		Check(t, s.Engine, res, Want{Status: abi.StatusSuccess, OutputText: "woke"})
		if took := time.Since(start); took < 20*time.Millisecond {
			t.Errorf("%s: a 20 ms sleep took %v", s.Engine, took)
		}
	})
	t.Run("printArgs", func(t *testing.T) {
		// The program name is the block's name, followed by the step's args.
		res := s.LoadBytes(t, "print_args", ThirdParty(t, "print_args.wasm")).
			Run(context.Background(), host.Step{Args: []string{"a", "b c"}})
		Check(t, s.Engine, res, Want{Status: abi.StatusSuccess, OutputText: "print_args\x00a\x00b c\x00"})
	})
	t.Run("exitInStart", func(t *testing.T) {
		res := s.LoadBytes(t, "exit_on_start", ThirdParty(t, "exit_on_start.wasm")).Run(context.Background(), host.Step{})
		Check(t, s.Engine, res, Want{Status: abi.StatusError, Code: abi.CodeExecutionFailed, Class: abi.ClassPermanent, Msg: "exited with code 2", ExitCode: exit(2)})
	})
}

// logBuffer collects the runtime's JSON log records.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

// stepMessages returns the messages of the records of one step.
func (l *logBuffer) stepMessages(stepID string) []string {
	l.mu.Lock()
	data := append([]byte(nil), l.buf.Bytes()...)
	l.mu.Unlock()
	var out []string
	for _, line := range bytes.Split(data, []byte("\n")) {
		var rec map[string]any
		if json.Unmarshal(line, &rec) != nil || rec["step_id"] != stepID {
			continue
		}
		if msg, ok := rec["@message"].(string); ok {
			out = append(out, msg)
		}
	}
	return out
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}
