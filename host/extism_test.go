package host_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/blockhost/blockhost/abi"
	"github.com/blockhost/blockhost/host"
	"github.com/blockhost/blockhost/host/engine"
	"github.com/blockhost/blockhost/host/httpcap"
	"github.com/blockhost/blockhost/internal/testwasm"
)

// stepOutput is a result's output as the block wrote it.
func stepOutput(res *abi.StepResult) string {
	switch {
	case res.Output != nil:
		return string(res.Output)
	case res.OutputText != nil:
		return *res.OutputText
	}
	return string(res.OutputBase64)
}

// watString assembles WebAssembly text.
func watString(t *testing.T, src string) []byte {
	t.Helper()
	path := filepath.Join(t.TempDir(), "m.wat")
	if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	return testwasm.WAT(t, path)
}

func TestExtism_plugin(t *testing.T) {
	forEachEngine(t, func(t *testing.T, rt *host.Runtime) {
		b := load(t, rt, "extism")
		if !b.IsExtism() || b.Kind() != "extism" {
			t.Fatalf("extism.wat loaded as %q, want an Extism plugin", b.Kind())
		}
		tests := []struct {
			fn       string
			input    string
			config   map[string]string
			limits   host.Limits
			status   abi.Status
			code     abi.Code
			output   string
			msg      string // the whole error message, when set
			msgSubst string
		}{
			{fn: "echo", input: `{"a":1}`, status: abi.StatusSuccess, output: `{"a":1}`},
			{fn: "echo", input: "", status: abi.StatusSuccess},
			{fn: "echo_offset", input: "from the input's block", status: abi.StatusSuccess, output: "from the input's block"},
			{fn: "greeting", config: map[string]string{"greeting": "Howdy"}, status: abi.StatusSuccess, output: "Howdy"},
			{fn: "greeting", status: abi.StatusSuccess},
			{fn: "no_result", status: abi.StatusSuccess, output: "hello from a plugin"},
			{fn: "vars", status: abi.StatusSuccess, output: "value of k"},
			{fn: "fail", status: abi.StatusError, code: abi.CodeExecutionFailed, msg: "it went wrong"},
			{fn: "fail_rc0", status: abi.StatusError, code: abi.CodeExecutionFailed, msg: "it went wrong"},
			{fn: "rc7", status: abi.StatusError, code: abi.CodeExecutionFailed, msg: `plugin function "rc7" returned 7`},
			{fn: "bad_load", status: abi.StatusError, code: abi.CodeExecutionFailed, msgSubst: "load_u64"},
			{fn: "unreachable", status: abi.StatusError, code: abi.CodeExecutionFailed, msgSubst: "unreachable"},
			{fn: "huge", status: abi.StatusError, code: abi.CodeQuotaExceeded, msgSubst: "memory block"},
			{fn: "spin", limits: host.Limits{Timeout: 100 * time.Millisecond}, status: abi.StatusTimeout, code: abi.CodeCancelledByTimeout},
			{fn: "missing", status: abi.StatusError, code: abi.CodeInvalidInput, msgSubst: `"missing" is not exported`},
			{fn: "takes_param", status: abi.StatusError, code: abi.CodeInvalidInput, msgSubst: "takes parameters"},
			{fn: "", status: abi.StatusError, code: abi.CodeInvalidInput, msgSubst: "name the plugin function"},
		}
		for _, tt := range tests {
			t.Run(tt.fn, func(t *testing.T) {
				res := b.Run(context.Background(), host.Step{Function: tt.fn, Input: []byte(tt.input), Config: tt.config, Limits: tt.limits})
				if res.Status != tt.status {
					t.Fatalf("status %s (%v), want %s", res.Status, res.Error, tt.status)
				}
				if tt.status == abi.StatusSuccess {
					if got := stepOutput(res); got != tt.output {
						t.Errorf("output %q, want %q", got, tt.output)
					}
					return
				}
				if res.Error == nil || res.Error.Code != tt.code {
					t.Fatalf("error %v, want code %s", res.Error, tt.code)
				}
				if tt.msg != "" && res.Error.Message != tt.msg {
					t.Errorf("message %q, want %q", res.Error.Message, tt.msg)
				}
				if !strings.Contains(res.Error.Message, tt.msgSubst) {
					t.Errorf("message %q does not mention %q", res.Error.Message, tt.msgSubst)
				}
			})
		}
	})
}

// Vars live for one step: each step is a fresh instance with fresh vars.
func TestExtism_varsLastOneStep(t *testing.T) {
	forEachEngine(t, func(t *testing.T, rt *host.Runtime) {
		b := load(t, rt, "extism")
		if res := b.Run(context.Background(), host.Step{Function: "vars"}); stepOutput(res) != "value of k" {
			t.Fatalf("vars: %s %q %v", res.Status, stepOutput(res), res.Error)
		}
		res := b.Run(context.Background(), host.Step{Function: "var_unset"})
		if res.Status != abi.StatusSuccess || stepOutput(res) != "" {
			t.Fatalf("a later step saw var k: %s %q %v", res.Status, stepOutput(res), res.Error)
		}
	})
}

// loopbackPolicy grants GET on the server at srvURL and nothing else.
func loopbackPolicy(t *testing.T, srvURL string) *httpcap.Policy {
	t.Helper()
	u, err := url.Parse(srvURL)
	if err != nil {
		t.Fatal(err)
	}
	port, _ := strconv.Atoi(u.Port())
	p, err := httpcap.NewPolicy(httpcap.Grant{Name: "loopback", Scheme: "http", Host: "127.0.0.1", Port: uint16(port),
		Paths: []string{"/ok"}, AllowRanges: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// An Extism plugin's HTTP goes through the HTTP capability: a granted
// request is sent, anything else is permission_denied before any
// connection.
func TestExtism_httpGrants(t *testing.T) {
	var (
		mu   sync.Mutex
		hits []string
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		hits = append(hits, r.URL.Path)
		mu.Unlock()
		fmt.Fprint(w, "pong")
	}))
	t.Cleanup(srv.Close)
	policy := loopbackPolicy(t, srv.URL)
	req := func(u string) []byte { return fmt.Appendf(nil, `{"url":%q,"method":"get"}`, u) }
	forEachEngine(t, func(t *testing.T, rt *host.Runtime) {
		b := load(t, rt, "extism")
		tests := []struct {
			name   string
			url    string
			grants *httpcap.Policy
			status abi.Status
			code   abi.Code
		}{
			{name: "granted", url: srv.URL + "/ok", grants: policy, status: abi.StatusSuccess},
			{name: "ungranted path", url: srv.URL + "/secret", grants: policy, status: abi.StatusError, code: abi.CodePermissionDenied},
			{name: "ungranted host", url: strings.Replace(srv.URL, "127.0.0.1", "localhost", 1) + "/ok", grants: policy, status: abi.StatusError, code: abi.CodePermissionDenied},
			{name: "no grants", url: srv.URL + "/ok", status: abi.StatusError, code: abi.CodePermissionDenied},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				mu.Lock()
				hits = nil
				mu.Unlock()
				res := b.Run(context.Background(), host.Step{Function: "http", Input: req(tt.url), Grants: host.Grants{HTTP: tt.grants}})
				if res.Status != tt.status {
					t.Fatalf("status %s (%v), want %s", res.Status, res.Error, tt.status)
				}
				mu.Lock()
				defer mu.Unlock()
				if tt.status == abi.StatusSuccess {
					if stepOutput(res) != "pong" || len(hits) != 1 {
						t.Errorf("output %q after %d requests, want pong after 1", stepOutput(res), len(hits))
					}
					return
				}
				if res.Error.Code != tt.code {
					t.Errorf("error %v, want %s", res.Error, tt.code)
				}
				if len(hits) != 0 {
					t.Errorf("a denied request reached the server: %v", hits)
				}
			})
		}
	})
}

func TestExtism_cancelled(t *testing.T) {
	forEachEngine(t, func(t *testing.T, rt *host.Runtime) {
		b := load(t, rt, "extism")
		ctx, cancel := context.WithCancelCause(context.Background())
		time.AfterFunc(50*time.Millisecond, func() { cancel(host.ErrCancelled) })
		res := b.Run(ctx, host.Step{Function: "spin", Limits: host.Limits{Timeout: time.Minute}})
		if res.Status != abi.StatusCancelled {
			t.Fatalf("status %s (%v), want cancelled", res.Status, res.Error)
		}
	})
}

func TestExtism_log(t *testing.T) {
	for _, level := range []hclog.Level{hclog.Info, hclog.Warn} {
		t.Run(level.String(), func(t *testing.T) {
			var logs bytes.Buffer
			logger := hclog.New(&hclog.LoggerOptions{Output: &logs, JSONFormat: true, Level: level})
			rt, err := host.NewRuntime(context.Background(), host.NewRuntimeConfig().WithLogger(logger))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { rt.Close(context.Background()) })
			res := load(t, rt, "extism").Run(context.Background(), host.Step{Function: "log"})
			if res.Status != abi.StatusSuccess {
				t.Fatalf("status %s (%v)", res.Status, res.Error)
			}
			// The plugin asks the level and logs only when info is wanted;
			// otherwise it outputs the message.
			logged := strings.Contains(logs.String(), `"@message":"hello from a plugin"`)
			if want := level <= hclog.Info; logged != want || (stepOutput(res) == "") != want {
				t.Errorf("at level %s: logged %v, output %q; want logged %v\n%s", level, logged, stepOutput(res), want, logs.String())
			}
		})
	}
}

func TestExtism_load(t *testing.T) {
	plugin := func(imports string) []byte {
		return watString(t, `(module `+imports+` (memory (export "memory") 1) (func (export "run") (result i32) (i32.const 0)))`)
	}
	tests := []struct {
		name string
		wasm []byte
		kind error
	}{
		{name: "unknown function", wasm: plugin(`(import "extism:host/env" "nope" (func))`), kind: host.ErrUnknownImport},
		{name: "wrong signature", wasm: plugin(`(import "extism:host/env" "alloc" (func (param i32) (result i32)))`), kind: host.ErrUnknownImport},
		{name: "embedder function", wasm: plugin(`(import "extism:host/user" "mult" (func (param i64 i64) (result i64)))`), kind: host.ErrUnknownImport},
		{name: "both ABIs", wasm: plugin(`(import "extism:host/env" "alloc" (func (param i64) (result i64))) (import "blockhost" "check" (func (result i32)))`), kind: host.ErrInvalidModule},
		{name: "no memory", wasm: watString(t, `(module (import "extism:host/env" "alloc" (func (param i64) (result i64))) (func (export "run")))`), kind: host.ErrInvalidModule},
	}
	forEachEngine(t, func(t *testing.T, rt *host.Runtime) {
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				_, err := rt.Load(context.Background(), tt.name, tt.wasm)
				if !errors.Is(err, tt.kind) {
					t.Fatalf("load: %v, want %v", err, tt.kind)
				}
			})
		}
		t.Run("function", func(t *testing.T) {
			b := load(t, rt, "extism")
			if err := b.CheckFunction("echo"); err != nil {
				t.Errorf("CheckFunction(echo): %v", err)
			}
			for _, fn := range []string{"", "nope", "takes_param"} {
				if err := b.CheckFunction(fn); !errors.Is(err, host.ErrInvalidModule) {
					t.Errorf("CheckFunction(%q): %v, want ErrInvalidModule", fn, err)
				}
			}
			abiBlock := load(t, rt, "echo")
			if err := abiBlock.CheckFunction("run"); !errors.Is(err, host.ErrInvalidModule) {
				t.Errorf("a blockhost block accepted a function to call: %v", err)
			}
			if res := abiBlock.Run(context.Background(), host.Step{Function: "run"}); res.Status != abi.StatusError || res.Error.Code != abi.CodeInvalidInput {
				t.Errorf("a blockhost block's step with a function: %s %v", res.Status, res.Error)
			}
		})
	})
}

// The engines' additions for Extism, through the engine interface: an
// entry's results, zeros for an entry's parameters, exports' signatures,
// and a host function's trap.
func TestExtism_engineAdditions(t *testing.T) {
	wasm := watString(t, `(module
		(import "t" "trap" (func $trap))
		(func (export "rc") (param i32 i64) (result i32) (i32.add (local.get 0) (i32.const 7)))
		(func (export "trap") (result i32) (call $trap) (i32.const 1)))`)
	boom := engine.HostModule{Name: "t", Functions: []engine.HostFunction{{Name: "trap",
		Func: func(context.Context, engine.Memory, []uint64) { panic(&engine.Trap{Message: "boom"}) }}}}
	for _, name := range engine.Names() {
		t.Run(name, func(t *testing.T) {
			f, _ := engine.Lookup(name)
			eng, err := f(context.Background(), engine.Config{HostModules: []engine.HostModule{boom}})
			if errors.Is(err, engine.ErrUnavailable) {
				t.Skip(err)
			}
			if err != nil {
				t.Fatal(err)
			}
			defer eng.Close(context.Background())
			mod, err := eng.Compile(context.Background(), wasm)
			if err != nil {
				t.Fatal(err)
			}
			found := false
			for _, ex := range mod.Exports() {
				if ex.Name == "rc" {
					found = len(ex.Signature.Params) == 2 && ex.Signature.Params[1] == abi.I64 && len(ex.Signature.Results) == 1
				}
			}
			if !found {
				t.Errorf("export rc has no (i32, i64) -> i32 signature: %v", mod.Exports())
			}
			rr, err := mod.Run(context.Background(), engine.RunConfig{Entry: []string{"rc"}})
			if err != nil || len(rr.Results) != 1 || rr.Results[0] != 7 {
				t.Fatalf("run rc: %v, results %v; want [7]", err, rr.Results)
			}
			_, err = mod.Run(context.Background(), engine.RunConfig{Entry: []string{"trap"}})
			if trap, ok := errors.AsType[*engine.Trap](err); !ok || trap.Message != "boom" || err.Error() != "wasm trap: boom" {
				t.Fatalf("run trap: %v, want the host function's *engine.Trap", err)
			}
		})
	}
}
