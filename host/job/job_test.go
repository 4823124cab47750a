package job_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/blockhost/blockhost/abi"
	"github.com/blockhost/blockhost/host"
	"github.com/blockhost/blockhost/host/executor"
	"github.com/blockhost/blockhost/host/job"
	"github.com/blockhost/blockhost/plugins"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// release lets jobtest.wait steps end.
var release = make(chan struct{})

func init() {
	plugins.Register(plugins.Plugin{Name: "jobtest.wait", Summary: "waits for the test",
		Run: func(ctx context.Context, call *host.Call) ([]byte, error) {
			select {
			case <-release:
				return []byte(`"released"`), nil
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}})
}

func newService(t *testing.T, cfg job.Config) *job.Service {
	t.Helper()
	svc, err := job.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { svc.Close(context.Background()) })
	return svc
}

func TestParseRequest_keepsStepID(t *testing.T) {
	for _, tc := range []struct {
		line, field string
		syntax      bool
	}{
		{`{"step_id":"s6","block":"x","blok":"y"}`, "blok", true},
		{`{"step_id":"s6","block":"x","timeout":true}`, "timeout", false},
		{`{"step_id":"s6","block":"x","timeout":"-1s"}`, "timeout", false},
		{`{"step_id":"s6","block":"x","retry":{"max_attempts":"3"}}`, "retry", true},
		{`{"step_id":"s6","block":"x","memory":"1TB?"}`, "memory", false},
		{`{"step_id":"s6","block":3}`, "block", true},
	} {
		req, err := job.ParseRequest([]byte(tc.line))
		var fe *job.FieldError
		if !errors.As(err, &fe) || !errors.Is(err, job.ErrInvalidRequest) {
			t.Fatalf("%s: error %v, want a *FieldError", tc.line, err)
		}
		if req.StepID != "s6" || fe.StepID != "s6" {
			t.Errorf("%s: step_id %q/%q, want s6 kept", tc.line, req.StepID, fe.StepID)
		}
		if fe.Field != tc.field || fe.Syntax != tc.syntax {
			t.Errorf("%s: field %q syntax %v, want %q %v (%v)", tc.line, fe.Field, fe.Syntax, tc.field, tc.syntax, err)
		}
	}
	if _, err := job.ParseRequest([]byte(`not json`)); !errors.Is(err, job.ErrInvalidRequest) {
		t.Errorf("not json: %v", err)
	}
	req, err := job.ParseRequest([]byte(`{"step_id":"ok","block":"b","priority":2,"memory":"128MiB","output_limit":4096,"timeout":250}`))
	if err != nil || *req.Priority != 2 || req.Memory != 128<<20 || req.OutputLimit != 4096 || time.Duration(req.Timeout) != 250*time.Millisecond {
		t.Errorf("valid line: %+v, %v", req, err)
	}
}

func TestResolve_fieldErrors(t *testing.T) {
	svc := newService(t, job.NewConfig())
	text, zero, half := "x", 0, 0.5
	for _, tc := range []struct {
		name  string
		req   job.Request
		field string
	}{
		{"no block", job.Request{}, "block"},
		{"block and manifest", job.Request{Block: "a", Manifest: "b"}, "manifest"},
		{"input and input_text", job.Request{Block: "jobtest.upper", Input: []byte(`1`), InputText: &text}, "input_text"},
		{"max_attempts 0", job.Request{Block: "jobtest.upper", Retry: &job.Retry{MaxAttempts: &zero}}, "retry.max_attempts"},
		{"multiplier", job.Request{Block: "jobtest.upper", Retry: &job.Retry{BackoffMultiplier: &half}}, "retry.backoff_multiplier"},
		{"memory", job.Request{Block: "jobtest.upper", Memory: 5 << 30}, "memory"},
		{"env", job.Request{Block: "jobtest.upper", Env: map[string]string{"1X": "y"}}, "env"},
	} {
		_, err := svc.Resolve(context.Background(), tc.req)
		var fe *job.FieldError
		if !errors.As(err, &fe) || fe.Field != tc.field {
			t.Errorf("%s: %v, want a FieldError on %s", tc.name, err, tc.field)
		}
		res := svc.Run(context.Background(), tc.req)
		if res.Status != abi.StatusError || res.Error == nil {
			t.Errorf("%s: Run gave %+v, want an error result", tc.name, res)
		}
	}
	_, err := svc.Resolve(context.Background(), job.Request{Block: filepath.Join(t.TempDir(), "none.wasm")})
	var le *job.LoadError
	if !errors.As(err, &le) || !errors.Is(err, job.ErrLoad) || !errors.Is(err, os.ErrNotExist) && le.Block == "" {
		t.Errorf("missing module: %v, want a LoadError", err)
	}
}

// TestResolve_flagsWin: one rule for every setting — override (flag), then
// request (line), then manifest.
func TestResolve_flagsWin(t *testing.T) {
	dir := t.TempDir()
	mf := filepath.Join(dir, "b.hcl")
	src := `block "b" {
  module = "jobtest.upper"
  limits {
    timeout = "1s"
    memory  = "32MiB"
  }
  retry {
    max_attempts = 2
  }
  capabilities {
    env = { A = "manifest", B = "manifest" }
  }
}
`
	if err := os.WriteFile(mf, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	four := 4
	line := job.Request{Manifest: mf, Timeout: job.Duration(2 * time.Second), Retry: &job.Retry{MaxAttempts: &four},
		Env: map[string]string{"B": "line", "C": "line"}}

	check := func(name string, o job.Settings, timeout time.Duration, memory uint64, attempts int, env map[string]string) {
		t.Helper()
		svc := newService(t, job.NewConfig().WithOverrides(o))
		xr, err := svc.Resolve(context.Background(), line)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if xr.Step.Limits.Timeout != timeout || xr.Step.Limits.Memory != memory || xr.Retry.MaxAttempts != attempts {
			t.Errorf("%s: timeout %s memory %d attempts %d; want %s %d %d", name,
				xr.Step.Limits.Timeout, xr.Step.Limits.Memory, xr.Retry.MaxAttempts, timeout, memory, attempts)
		}
		for k, v := range env {
			if xr.Step.Grants.Env[k] != v {
				t.Errorf("%s: env %s=%q, want %q", name, k, xr.Step.Grants.Env[k], v)
			}
		}
		if res := svc.Run(context.Background(), line); res.Status != abi.StatusSuccess {
			t.Errorf("%s: the built-in named by the manifest: %+v", name, res)
		}
	}
	check("line over manifest", job.Settings{}, 2*time.Second, 32<<20, 4,
		map[string]string{"A": "manifest", "B": "line", "C": "line"})
	check("flags over line", job.Settings{Limits: host.Limits{Timeout: 3 * time.Second, Memory: 16 << 20},
		Retry: executorPolicy(1), Env: map[string]string{"C": "flag"}, ExtendGrants: true}, 3*time.Second, 16<<20, 1,
		map[string]string{"A": "manifest", "B": "line", "C": "flag"})
	line.Timeout, line.Retry = 0, nil
	check("manifest alone", job.Settings{}, time.Second, 32<<20, 2, nil)
}

// TestService_sharedIdempotencyKey: a second request holding a running
// step's key gets that step's result under its own ID, naming the first.
func TestService_sharedIdempotencyKey(t *testing.T) {
	svc := newService(t, job.NewConfig())
	ctx := context.Background()
	first := svc.Submit(ctx, job.Request{StepID: "one", Block: "jobtest.wait", IdempotencyKey: "k"})
	second := svc.Submit(ctx, job.Request{StepID: "two", Block: "jobtest.wait", IdempotencyKey: "k"})
	release <- struct{}{}
	r1, r2 := first.Result(), second.Result()
	if r1.StepID != "one" || r2.StepID != "two" {
		t.Errorf("step IDs %q, %q; want one, two", r1.StepID, r2.StepID)
	}
	if second.DuplicateOf() != "one" || first.DuplicateOf() != "" {
		t.Errorf("DuplicateOf %q, %q; want \"\", one", first.DuplicateOf(), second.DuplicateOf())
	}
	if r2.Status != abi.StatusSuccess || string(r2.Output) != `"released"` {
		t.Errorf("shared result %+v", r2)
	}
}

func TestNew_invalidConfig(t *testing.T) {
	for _, tc := range []struct {
		cfg   job.Config
		field string
	}{
		{job.NewConfig().WithOverrides(job.Settings{Engine: "v8"}), "engine"},
		{job.NewConfig().WithOverrides(job.Settings{Limits: host.Limits{Memory: 5 << 30}}), "memory"},
		{job.NewConfig().WithOverrides(job.Settings{Env: map[string]string{"": "x"}}), "env"},
		{job.NewConfig().WithMaxInput(0), "max input"},
	} {
		_, err := job.New(tc.cfg)
		var ce *job.ConfigError
		if !errors.As(err, &ce) || !errors.Is(err, job.ErrInvalidConfig) || ce.Field != tc.field {
			t.Errorf("%v, want a ConfigError on %s", err, tc.field)
		}
	}
}

func TestCounter(t *testing.T) {
	var c job.Counter
	c.Add(&abi.StepResult{Status: abi.StatusSuccess, Attempts: 2, RetriesUsed: 1})
	c.Add(&abi.StepResult{Status: abi.StatusError, Attempts: 1, Error: abi.NewError(abi.CodeInvalidInput, abi.ClassPermanent, "x")})
	got := c.Counts()
	if got.Steps != 2 || got.ByStatus[abi.StatusSuccess] != 1 || got.ByCode[abi.CodeInvalidInput] != 1 || got.Attempts != 3 || got.Retries != 1 {
		t.Errorf("%+v", got)
	}
}

func executorPolicy(attempts int) executor.RetryPolicy {
	return executor.RetryPolicy{MaxAttempts: attempts}
}
