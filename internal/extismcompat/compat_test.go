package extismcompat

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	extism "github.com/extism/go-sdk"
	"github.com/hashicorp/go-hclog"
	"github.com/tetratelabs/wazero"

	"github.com/blockhost/blockhost/abi"
	"github.com/blockhost/blockhost/host"
	"github.com/blockhost/blockhost/host/fscap"
	"github.com/blockhost/blockhost/host/httpcap"
	// The second engine; a build without cgo has it registered as
	// unavailable, and the test then says so.
	_ "github.com/blockhost/blockhost/host/engine/wasmtime"
)

// sdkVersion is the go-sdk whose test plugins are compared. go.mod
// requires the same version.
const sdkVersion = "v1.7.1"

var (
	sdkOnce sync.Once
	sdkPath string
	sdkErr  error
)

// sdkDir is the go-sdk's directory in the module cache, where `go mod
// download` put it.
func sdkDir(tb testing.TB) string {
	tb.Helper()
	sdkOnce.Do(func() {
		out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}} {{.Version}}", "github.com/extism/go-sdk").Output()
		if err != nil {
			sdkErr = fmt.Errorf("go list -m github.com/extism/go-sdk: %w (run go mod download in internal/extismcompat)", err)
			return
		}
		dir, version, _ := strings.Cut(strings.TrimSpace(string(out)), " ")
		if version != sdkVersion {
			sdkErr = fmt.Errorf("go-sdk is %s, want %s", version, sdkVersion)
			return
		}
		if _, err := os.Stat(filepath.Join(dir, "wasm", "count_vowels.wasm")); err != nil {
			sdkErr = fmt.Errorf("go-sdk's test plugins are missing (run go mod download in internal/extismcompat): %w", err)
			return
		}
		sdkPath = dir
	})
	if sdkErr != nil {
		if os.Getenv("CI") == "true" {
			tb.Fatal(sdkErr)
		}
		tb.Skip(sdkErr)
	}
	return sdkPath
}

// runtimes returns a blockhost runtime per engine, logging every block
// record at trace level as JSON into their buffers when logs is set.
func runtimes(tb testing.TB, logs bool) map[string]*runtime {
	tb.Helper()
	out := map[string]*runtime{}
	for _, name := range []string{"wazero", "wasmtime"} {
		r := &runtime{}
		logger := hclog.NewNullLogger()
		if logs {
			logger = hclog.New(&hclog.LoggerOptions{Output: &r.logs, Level: hclog.Trace, JSONFormat: true})
		}
		rt, err := host.NewRuntime(context.Background(), host.NewRuntimeConfig().WithEngine(name).WithLogger(logger).
			WithCacheDir(cacheDir(tb, "blockhost-"+name)))
		if err != nil {
			if os.Getenv("CI") == "true" {
				tb.Fatalf("engine %s: %v", name, err)
			}
			tb.Logf("engine %s is not available, not compared: %v", name, err)
			continue
		}
		tb.Cleanup(func() { rt.Close(context.Background()) })
		r.rt = rt
		out[name] = r
	}
	return out
}

type runtime struct {
	rt   *host.Runtime
	logs syncBuffer
}

// syncBuffer is a buffer the logger writes to while a test reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// bytes returns what was written so far.
func (s *syncBuffer) bytes() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return bytes.Clone(s.b.Bytes())
}

// stepSeq numbers the steps, whose log records are told apart by ID.
var stepSeq atomic.Uint64

// pluginCase is one call of one test plugin, made the same way through
// both hosts.
type pluginCase struct {
	name   string
	file   string
	fn     string
	input  []byte
	config map[string]string
	// http grants the loopback server: Extism's allowed_hosts and
	// blockhost's HTTP grant both name 127.0.0.1 and nothing else.
	http bool
	// mnt grants a directory holding the go-sdk's testdata/test.txt at
	// /mnt, read-only: allowed_paths "ro:DIR" and a read-only fscap grant.
	mnt bool
	// rw makes the /mnt grant writable, as the go-sdk's own fs tests have it.
	rw bool
	// timeout bounds the call: the manifest's timeout_ms and the step's
	// timeout.
	timeout time.Duration

	// What blockhost must answer besides matching Extism: for a call that
	// fails, the step's status and error code; samePluginMessage when the
	// plugin's own error message is the step's.
	status            abi.Status
	code              abi.Code
	samePluginMessage bool
	// messagePrefix is the start of the plugin's own error message, the
	// same on both hosts, when what follows it differs.
	messagePrefix string
	// engineDiffers lists the engines that answer differently, with why;
	// their answer is logged, not compared.
	engineDiffers map[string]string
	// slowOnExtism marks a call that takes the go-sdk tens of seconds (its
	// kernel module is called through for every host call): Extism's side
	// runs only with BLOCKHOST_EXTISM_SLOW=1, and is otherwise taken from
	// the go-sdk's own test of the plugin (expect).
	slowOnExtism bool
	expect       outcome
}

// notRun are the test plugins that need something of an Extism embedder
// that blockhost does not provide, with the reason.
var notRun = map[string]string{
	"host.wasm":           "imports extism:host/user.mult, a host function of its embedder (the go-sdk test's Go code)",
	"host_memory.wasm":    "imports host.to_upper, a host function of its embedder",
	"host_multiple.wasm":  "imports extism:host/user.hostGreenMessage and hostPurpleMessage, host functions of its embedder",
	"main.wasm":           "imports lib.capitalize from lib.wasm: a manifest of two linked modules, which blockhost does not run",
	"lib.wasm":            "the library half of main.wasm; its export capitalize takes parameters, so it is not a plugin function",
	"nested.c.instr.wasm": "imports dylibso_observe.*, the host functions of the Observe SDK's tracing adapter",
}

// cases are the calls compared. Every file of the go-sdk's wasm/ is either
// here or in notRun (TestCompat_everyPlugin checks).
func cases(srvURL string) []pluginCase {
	u, _ := url.Parse(srvURL)
	denied := "http://localhost:" + u.Port() + "/ungranted"
	return []pluginCase{
		// TestAlloc of the go-sdk: the call succeeds with no output.
		{name: "alloc", file: "alloc.wasm", fn: "run_test", slowOnExtism: true, expect: outcome{ok: true}},
		{name: "config", file: "config.wasm", fn: "run_test", config: map[string]string{"thing": "1"}},
		{name: "config/unset", file: "config.wasm", fn: "run_test"},
		{name: "count_vowels", file: "count_vowels.wasm", fn: "count_vowels", input: []byte("Hello, World!")},
		{name: "count_vowels/empty", file: "count_vowels.wasm", fn: "count_vowels"},
		{name: "count_vowels_std", file: "count_vowels_std.wasm", fn: "_start", input: []byte("ben"), config: map[string]string{"thing": "x"}},
		{name: "exit/0", file: "exit.wasm", fn: "_start", config: map[string]string{"code": "0"}},
		{name: "exit/500", file: "exit.wasm", fn: "_start", config: map[string]string{"code": "500"},
			status: abi.StatusError, code: abi.CodeExecutionFailed},
		{name: "exit/abc", file: "exit.wasm", fn: "_start", config: map[string]string{"code": "abc"},
			status: abi.StatusError, code: abi.CodeExecutionFailed},
		{name: "fail", file: "fail.wasm", fn: "run_test",
			status: abi.StatusError, code: abi.CodeExecutionFailed, samePluginMessage: true},
		{name: "fs", file: "fs.wasm", fn: "run_test", mnt: true, rw: true},
		{name: "fs/ungranted", file: "fs.wasm", fn: "run_test",
			status: abi.StatusError, code: abi.CodeExecutionFailed},
		{name: "fs_std", file: "fs_std.wasm", fn: "run_test", mnt: true, rw: true},
		{name: "hello", file: "hello.wasm", fn: "run_test"},
		{name: "hello_haskell", file: "hello_haskell.wasm", fn: "testing", input: []byte("John"), config: map[string]string{"greeting": "Howdy"}},
		{name: "http/no-grants", file: "http.wasm", fn: "run_test",
			status: abi.StatusError, code: abi.CodePermissionDenied},
		{name: "http_headers", file: "http_headers.wasm", fn: "http_get", input: jsonURL(srvURL + "/headers"), http: true},
		{name: "http_headers/ungranted", file: "http_headers.wasm", fn: "http_get", input: jsonURL(denied), http: true,
			status: abi.StatusError, code: abi.CodePermissionDenied},
		{name: "input_offset", file: "input_offset.wasm", fn: "input_offset_length", input: []byte("0123456789abc")},
		{name: "log", file: "log.wasm", fn: "run_test"},
		{name: "noop", file: "noop.wasm", fn: "run_test"},
		{name: "println", file: "println.wasm", fn: "run_test", input: []byte("printed")},
		{name: "read_write/read", file: "read_write.wasm", fn: "try_read", mnt: true, config: map[string]string{"path": "/mnt/test.txt"}},
		{name: "read_write/write", file: "read_write.wasm", fn: "try_write", input: []byte("hello hello!"), mnt: true,
			config: map[string]string{"path": "/mnt/test.txt"},
			status: abi.StatusError, code: abi.CodeExecutionFailed, messagePrefix: "Failed to write file: "},
		{name: "replace", file: "replace.wasm", fn: "run_test", input: []byte("a test of test")},
		{name: "sleep/0", file: "sleep.wasm", fn: "run_test", config: map[string]string{"duration": "0"}},
		{name: "sleep/timeout", file: "sleep.wasm", fn: "run_test", config: map[string]string{"duration": "3"}, timeout: 300 * time.Millisecond,
			status: abi.StatusTimeout, code: abi.CodeCancelledByTimeout},
		{name: "std_command", file: "std_command.wasm", fn: "_start", input: []byte("x")},
		{name: "var", file: "var.wasm", fn: "run_test"},
	}
}

func jsonURL(u string) []byte {
	b, _ := json.Marshal(map[string]string{"url": u})
	return b
}

// outcome is what one host answered for one call.
type outcome struct {
	ok       bool
	output   []byte
	message  string
	exitCode *uint32
	logs     []string // "level: message"
	took     time.Duration
}

func (o outcome) String() string {
	s := fmt.Sprintf("ok=%v output=%q", o.ok, o.output)
	if !o.ok {
		s += fmt.Sprintf(" error=%q", o.message)
	}
	if o.exitCode != nil {
		s += fmt.Sprintf(" exit=%d", *o.exitCode)
	}
	return s
}

// loopback is the server the HTTP plugins call, with a fixed answer: no
// Date header, so two calls answer the same bytes.
func loopback(tb testing.TB) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header()["Date"] = nil
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("X-Answer", "42")
		fmt.Fprintf(w, `{"path":%q}`, r.URL.Path)
	}))
	tb.Cleanup(srv.Close)
	return srv
}

// mntDir is a directory holding a copy of the go-sdk's testdata/test.txt,
// so that no write, if one got through, could touch the module cache.
func mntDir(tb testing.TB, sdk string) string {
	data, err := os.ReadFile(filepath.Join(sdk, "testdata", "test.txt"))
	if err != nil {
		tb.Fatal(err)
	}
	dir := tb.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "test.txt"), data, 0o644); err != nil {
		tb.Fatal(err)
	}
	return dir
}

var logMu sync.Mutex // Extism's log level is global

// sdkMessages start the go-sdk's own log records, which it logs through
// the plugin's logger; only the plugin's records are compared.
var sdkMessages = []string{
	"Calling ", "Initializing runtime", "Initialized Haskell", "No runtime detected",
	"WASI runtime detected", "Reactor module detected", "Command module detected",
	"Haskell runtime detected", "hs_init function found", "_initialize function found",
	"__wasm_call_ctors function found", "Error running reactor",
}

func sdkMessage(msg string) bool {
	for _, p := range sdkMessages {
		if strings.HasPrefix(msg, p) {
			return true
		}
	}
	return false
}

// cacheDir is where compiled plugins are kept between runs, for both
// hosts alike: compiling the larger plugins (Go, Haskell) under the race
// detector takes a minute each.
func cacheDir(tb testing.TB, name string) string {
	base, err := os.UserCacheDir()
	if err != nil {
		base = os.TempDir()
	}
	dir := filepath.Join(base, "blockhost-extismcompat", name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		tb.Fatal(err)
	}
	return dir
}

var (
	extismCacheOnce sync.Once
	extismCache     wazero.CompilationCache
)

// extismCacheFor is the go-sdk's compilation cache, kept like blockhost's.
func extismCacheFor(tb testing.TB) wazero.CompilationCache {
	extismCacheOnce.Do(func() {
		c, err := wazero.NewCompilationCacheWithDir(cacheDir(tb, "extism"))
		if err != nil {
			c = wazero.NewCompilationCache()
		}
		extismCache = c
	})
	return extismCache
}

// extismMu makes the Extism side's runs take turns. They share one
// wazero compilation cache, and wazero v1.12.0 publishes a module read
// from its file cache before compiling its entry preambles, so a second
// compilation of the same module at the same time gets it incomplete: a
// data race, or a panic in instantiation (wazero issue #2547). blockhost's
// own wazero engine compiles through its cache one module at a time
// (host/engine/wazero/cache.go).
var extismMu sync.Mutex

// runExtism calls the plugin through the Extism go-sdk: a fresh plugin,
// with WASI, as the go-sdk's own tests make it.
func runExtism(ctx context.Context, tb testing.TB, sdk, mnt, srvURL string, c pluginCase) outcome {
	extismMu.Lock()
	defer extismMu.Unlock()
	m := extism.Manifest{
		Wasm:   []extism.Wasm{extism.WasmFile{Path: filepath.Join(sdk, "wasm", c.file)}},
		Config: maps.Clone(c.config),
	}
	if c.http {
		m.AllowedHosts = []string{"127.0.0.1"}
	}
	if c.mnt {
		m.AllowedPaths = map[string]string{"ro:" + mnt: "/mnt"}
		if c.rw {
			m.AllowedPaths = map[string]string{mnt: "/mnt"}
		}
	}
	if c.timeout > 0 {
		m.Timeout = uint64(c.timeout.Milliseconds())
	}
	compiled, err := extism.NewCompiledPlugin(ctx, m, extism.PluginConfig{
		EnableWasi: true, EnableHttpResponseHeaders: true,
		RuntimeConfig: wazero.NewRuntimeConfig().WithCompilationCache(extismCacheFor(tb)),
	}, nil)
	if err != nil {
		tb.Fatalf("extism: %s: %v", c.file, err)
	}
	defer compiled.Close(ctx)
	p, err := compiled.Instance(ctx, extism.PluginInstanceConfig{ModuleConfig: wazero.NewModuleConfig().WithSysWalltime()})
	if err != nil {
		tb.Fatalf("extism: %s: %v", c.file, err)
	}
	defer p.Close(ctx)
	var o outcome
	p.SetLogger(func(level extism.LogLevel, msg string) {
		if !sdkMessage(msg) {
			o.logs = append(o.logs, strings.ToLower(level.String())+": "+msg)
		}
	})
	logMu.Lock()
	extism.SetLogLevel(extism.LogLevelTrace)
	start := time.Now()
	rc, out, err := p.Call(c.fn, c.input)
	o.took = time.Since(start)
	logMu.Unlock()
	o.ok, o.output = rc == 0 && err == nil, out
	if err != nil {
		o.message = err.Error()
	}
	if rc != 0 && c.status != abi.StatusTimeout {
		o.exitCode = &rc
	}
	return o
}

// runBlockhost runs the call as one blockhost step.
func runBlockhost(ctx context.Context, tb testing.TB, r *runtime, sdk, mnt, srvURL string, c pluginCase) (outcome, *abi.StepResult) {
	wasm, err := os.ReadFile(filepath.Join(sdk, "wasm", c.file))
	if err != nil {
		tb.Fatal(err)
	}
	b, err := r.rt.Load(ctx, c.file, wasm)
	if err != nil {
		tb.Fatalf("blockhost: %s: %v", c.file, err)
	}
	step := host.Step{Input: c.input, Function: c.fn, Config: c.config, Limits: host.Limits{Timeout: c.timeout}}
	if step.Limits.Timeout == 0 {
		step.Limits.Timeout = time.Minute // a hang-catcher
	}
	if c.http {
		u, _ := url.Parse(srvURL)
		port := u.Port()
		var p uint16
		fmt.Sscan(port, &p)
		step.Grants.HTTP, err = httpcap.NewPolicy(httpcap.Grant{Name: "loopback", Scheme: "http", Host: "127.0.0.1", Port: p,
			AllowRanges: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}})
		if err != nil {
			tb.Fatal(err)
		}
	}
	if c.mnt {
		step.Grants.FS = []fscap.Grant{{HostDir: mnt, GuestPath: "/mnt", ReadOnly: !c.rw}}
	}
	step.ID = fmt.Sprintf("%032x", stepSeq.Add(1))
	start := time.Now()
	res := b.Run(ctx, step)
	took := time.Since(start)
	o := outcome{ok: res.Status == abi.StatusSuccess, output: outputBytes(res)}
	if res.Error != nil {
		o.message = res.Error.Message
		o.exitCode = res.Error.ExitCode
	}
	o.logs = blockLogs(r.logs.bytes(), step.ID)
	o.took = took
	return o, res
}

// outputBytes is the step's output as the plugin wrote it.
func outputBytes(res *abi.StepResult) []byte {
	switch {
	case res.Output != nil:
		return []byte(res.Output)
	case res.OutputText != nil:
		return []byte(*res.OutputText)
	}
	return res.OutputBase64
}

// blockLogs are the plugin's log records, as "level: message"; what it
// printed on its standard streams is not among them (Extism drops it).
// The plugin's records are under the logger "guest", the host's under
// "block".
func blockLogs(raw []byte, stepID string) []string {
	var out []string
	sc := bufio.NewScanner(bytes.NewReader(raw))
	for sc.Scan() {
		var rec map[string]any
		if json.Unmarshal(sc.Bytes(), &rec) != nil || rec["@module"] != "guest" || rec["stream"] != nil || rec["step_id"] != stepID {
			continue
		}
		if msg, _ := rec["@message"].(string); strings.HasPrefix(msg, "http request") {
			// The HTTP capability's own record of the request.
			continue
		}
		out = append(out, fmt.Sprintf("%s: %s", rec["@level"], rec["@message"]))
	}
	return out
}

// TestCompat_plugins runs every test plugin that needs nothing of an
// Extism embedder through the Extism go-sdk and through blockhost on each
// engine, and compares: success or failure, the output, the plugin's own
// error message and exit code, and its log records.
func TestCompat_plugins(t *testing.T) {
	sdk := sdkDir(t)
	srv := loopback(t)
	mnt := mntDir(t, sdk)
	rts := runtimes(t, true)
	ctx := context.Background()
	for _, c := range cases(srv.URL) {
		t.Run(c.name, func(t *testing.T) {
			// Two at a time: most of the time goes to compiling.
			t.Parallel()
			want := c.expect
			if !c.slowOnExtism || os.Getenv("BLOCKHOST_EXTISM_SLOW") == "1" {
				want = runExtism(ctx, t, sdk, mnt, srv.URL, c)
			} else {
				t.Logf("%s: Extism's side is its own test's expectation (BLOCKHOST_EXTISM_SLOW=1 runs it)", c.file)
			}
			if c.status == "" && !want.ok {
				t.Fatalf("Extism failed a call the case expects to succeed: %v", want)
			}
			if c.status != "" && want.ok {
				t.Fatalf("Extism succeeded on a call the case expects to fail: %v", want)
			}
			for _, engine := range slices.Sorted(maps.Keys(rts)) {
				got, res := runBlockhost(ctx, t, rts[engine], sdk, mnt, srv.URL, c)
				if why := c.engineDiffers[engine]; why != "" {
					t.Logf("%s on %s: not compared: %s; blockhost answered %v", c.file, engine, why, got)
					continue
				}
				if err := compare(c, want, got, res); err != nil {
					t.Errorf("%s on %s: %v\n  extism:    %v\n  blockhost: %v", c.file, engine, err, want, got)
					continue
				}
				t.Logf("%s on %s: same as Extism: %v (blockhost %v, Extism %v)", c.file, engine, got, got.took, want.took)
			}
		})
	}
}

// errMismatch is what compare reports.
var errMismatch = errors.New("extismcompat: blockhost and Extism differ")

func compare(c pluginCase, want, got outcome, res *abi.StepResult) error {
	if want.ok != got.ok {
		return fmt.Errorf("%w: Extism ok=%v, blockhost %s", errMismatch, want.ok, res.Status)
	}
	if got.ok && !bytes.Equal(want.output, got.output) {
		return fmt.Errorf("%w: outputs differ", errMismatch)
	}
	if !slices.Equal(want.logs, got.logs) {
		return fmt.Errorf("%w: logs differ: Extism %q, blockhost %q", errMismatch, want.logs, got.logs)
	}
	if got.ok {
		return nil
	}
	if res.Status != c.status || res.Error == nil || res.Error.Code != c.code {
		return fmt.Errorf("%w: blockhost ended %s %v, the case wants %s %s", errMismatch, res.Status, res.Error, c.status, c.code)
	}
	if c.samePluginMessage && want.message != got.message {
		return fmt.Errorf("%w: error messages differ", errMismatch)
	}
	if c.messagePrefix != "" && (!strings.HasPrefix(want.message, c.messagePrefix) || !strings.HasPrefix(got.message, c.messagePrefix)) {
		return fmt.Errorf("%w: error messages do not both start %q", errMismatch, c.messagePrefix)
	}
	if want.exitCode != nil && res.Error.ExitCode != nil && *want.exitCode != *res.Error.ExitCode {
		return fmt.Errorf("%w: exit codes differ", errMismatch)
	}
	return nil
}

// TestCompat_everyPlugin checks that every test plugin of the go-sdk is
// compared or listed with the reason it is not.
func TestCompat_everyPlugin(t *testing.T) {
	sdk := sdkDir(t)
	files, err := filepath.Glob(filepath.Join(sdk, "wasm", "*.wasm"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no test plugins in %s: %v", sdk, err)
	}
	covered := map[string]bool{}
	for _, c := range cases("http://127.0.0.1:1") {
		covered[c.file] = true
	}
	for _, f := range files {
		name := filepath.Base(f)
		switch {
		case covered[name] && notRun[name] != "":
			t.Errorf("%s is both compared and listed as not run", name)
		case covered[name]:
		case notRun[name] != "":
			t.Logf("%s: not run: %s", name, notRun[name])
		default:
			t.Errorf("%s is neither compared nor listed with a reason", name)
		}
	}
}

// TestCompat_notRunAreRefused checks that blockhost refuses the plugins
// that need an embedder at load, naming the import, rather than failing
// later.
func TestCompat_notRunAreRefused(t *testing.T) {
	sdk := sdkDir(t)
	rts := runtimes(t, true)
	for name := range notRun {
		wasm, err := os.ReadFile(filepath.Join(sdk, "wasm", name))
		if err != nil {
			t.Fatal(err)
		}
		for engine, r := range rts {
			_, err := r.rt.Load(context.Background(), name, wasm)
			if name == "lib.wasm" {
				// A library loads (as a WASI command); it just has no plugin
				// function to call.
				continue
			}
			if !errors.Is(err, host.ErrUnknownImport) {
				t.Errorf("%s on %s: load error %v, want one matching host.ErrUnknownImport", name, engine, err)
			}
		}
	}
}
