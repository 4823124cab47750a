package extismcompat

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	extism "github.com/extism/go-sdk"
	"github.com/tetratelabs/wazero"

	"github.com/blockhost/blockhost/abi"
)

// blockhostCLI builds the blockhost command once per test binary.
func blockhostCLI(t *testing.T) string {
	t.Helper()
	cliOnce.Do(func() {
		cliPath = filepath.Join(cliDir, "blockhost")
		// Built in blockhost's own module, with its own go.sum: this module
		// requires only what its tests import.
		cmd := exec.Command("go", "build", "-o", cliPath, "./cmd/blockhost")
		cmd.Dir = filepath.Join("..", "..")
		out, err := cmd.CombinedOutput()
		if err != nil {
			cliErr = errors.New("go build cmd/blockhost: " + err.Error() + "\n" + string(out))
		}
	})
	if cliErr != nil {
		t.Fatal(cliErr)
	}
	return cliPath
}

// runCLI runs `blockhost run ARGS…` and returns its result and exit code.
func runCLI(t *testing.T, args ...string) (*abi.StepResult, int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute) // a hang-catcher
	defer cancel()
	cmd := exec.CommandContext(ctx, blockhostCLI(t), append([]string{"run", "--no-cache"}, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if ee, ok := errors.AsType[*exec.ExitError](err); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	var res abi.StepResult
	if stdout.Len() > 0 {
		if err := json.Unmarshal(stdout.Bytes(), &res); err != nil {
			t.Fatalf("result is not JSON: %v\n%s\n%s", err, stdout.String(), stderr.String())
		}
	}
	return &res, code, stderr.String()
}

// The issue's own examples, through the command line.
func TestCLI_countVowels(t *testing.T) {
	sdk := sdkDir(t)
	plugin := filepath.Join(sdk, "wasm", "count_vowels.wasm")

	ctx := context.Background()
	compiled, err := extism.NewCompiledPlugin(ctx, extism.Manifest{Wasm: []extism.Wasm{extism.WasmFile{Path: plugin}}},
		extism.PluginConfig{EnableWasi: true, RuntimeConfig: wazero.NewRuntimeConfig().WithCompilationCache(extismCacheFor(t))}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer compiled.Close(ctx)
	p, err := compiled.Instance(ctx, extism.PluginInstanceConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(ctx)
	_, out, err := p.Call("count_vowels", []byte("Hello, World!"))
	if err != nil {
		t.Fatal(err)
	}
	var want struct{ Count int }
	if err := json.Unmarshal(out, &want); err != nil {
		t.Fatal(err)
	}

	for _, engine := range []string{"wazero", "wasmtime"} {
		res, code, stderr := runCLI(t, "--engine", engine, "--func", "count_vowels", "--input", "Hello, World!", plugin)
		var got struct{ Count int }
		if code != 0 || json.Unmarshal(res.Output, &got) != nil || got.Count != want.Count {
			t.Errorf("%s: exit %d, output %s, want count %d as Extism says\n%s", engine, code, res.Output, want.Count, stderr)
		}
	}
}

func TestCLI_sleepTimesOut(t *testing.T) {
	sleep := filepath.Join(sdkDir(t), "wasm", "sleep.wasm")
	start := time.Now()
	res, code, stderr := runCLI(t, "--func", "run_test", "--config", "duration=3", "--timeout", "500ms", sleep)
	if code != 124 || res.Status != abi.StatusTimeout {
		t.Fatalf("exit %d, status %s; want 124 and timeout\n%s", code, res.Status, stderr)
	}
	if took := time.Since(start); took > 30*time.Second {
		t.Errorf("took %v", took) // a hang-catcher: the plugin sleeps 3s
	}
}

func TestCLI_httpGrants(t *testing.T) {
	plugin := filepath.Join(sdkDir(t), "wasm", "http_headers.wasm")
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Answer", "42")
	}))
	defer srv.Close()
	grant := "GET " + srv.URL + "/granted/ allow_ranges=127.0.0.1/32"
	input := func(path string) string { return string(jsonURL(srv.URL + path)) }

	res, code, stderr := runCLI(t, "--func", "http_get", "--allow-http", grant, "--input", input("/granted/x"), plugin)
	var headers map[string]string
	if code != 0 || json.Unmarshal(res.Output, &headers) != nil || headers["x-answer"] != "42" {
		t.Errorf("granted: exit %d, output %s\n%s", code, res.Output, stderr)
	}
	for name, args := range map[string][]string{
		"ungranted path": {"--allow-http", grant, "--input", input("/other")},
		"no grants":      {"--input", input("/granted/x")},
	} {
		res, code, stderr := runCLI(t, append(append([]string{"--func", "http_get"}, args...), plugin)...)
		if code != 1 || res.Error == nil || res.Error.Code != abi.CodePermissionDenied {
			t.Errorf("%s: exit %d, error %v; want 1 and permission_denied\n%s", name, code, res.Error, stderr)
		}
	}
}

func TestCLI_badFunction(t *testing.T) {
	plugin := filepath.Join(sdkDir(t), "wasm", "count_vowels.wasm")
	for _, args := range [][]string{
		{"--func", "nope", plugin},
		{plugin}, // an Extism plugin needs --func
	} {
		_, code, stderr := runCLI(t, args...)
		if code != 2 || !bytes.Contains([]byte(stderr), []byte("count_vowels")) {
			t.Errorf("%v: exit %d, stderr %q; want 2 and a message naming the plugin", args, code, stderr)
		}
	}
}

var (
	cliOnce sync.Once
	cliPath string
	cliErr  error
	cliDir  string
)

// TestMain gives the built command a directory that outlives the tests
// that use it, and removes it at the end.
func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "extismcompat-cli-")
	if err != nil {
		panic(err)
	}
	cliDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// A manifest's function and config, and --config over them.
func TestCLI_manifest(t *testing.T) {
	plugin := filepath.Join(sdkDir(t), "wasm", "config.wasm")
	path := filepath.Join(t.TempDir(), "config.hcl")
	src := fmt.Sprintf("block %q {\n  module = %q\n  function = \"run_test\"\n  config {\n    thing = \"from the manifest\"\n  }\n}\n", "config", plugin)
	if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--manifest", path}, "from the manifest"},
		{[]string{"--config", "thing=from a flag", "--manifest", path}, "from a flag"},
	} {
		res, code, stderr := runCLI(t, tc.args...)
		var got struct{ Config string }
		if code != 0 || json.Unmarshal(res.Output, &got) != nil || got.Config != tc.want {
			t.Errorf("%v: exit %d, output %s; want config %q\n%s", tc.args, code, res.Output, tc.want, stderr)
		}
	}
}
