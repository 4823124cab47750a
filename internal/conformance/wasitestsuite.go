package conformance

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/blockhost/blockhost/abi"
	"github.com/blockhost/blockhost/host"
	"github.com/blockhost/blockhost/host/engine"
	"github.com/blockhost/blockhost/host/fscap"
	"github.com/blockhost/blockhost/internal/testwasm"
)

// The public WASI preview1 conformance suite (github.com/WebAssembly/wasi-testsuite),
// run as its doc/specification.md says: every *.wasm under tests/ is a test
// case; its .json beside it, when present, gives the argv, the environment,
// the directory preopened read-write at "/" (`root`), and the expected exit
// code and standard output. Each case runs in a fresh temporary copy of its
// root, with the *.cleanup entries a previous run may have left removed
// first, so that the suite's own folder is never written.
//
// The suite is not part of this repository: it is found at
// ../shared/wasi-testsuite relative to the module root. Where it is absent
// the tests skip, naming that path — except under CI=true, where its
// absence is a failure.

// wasiSuiteTimeout bounds one test case; the suite's slowest takes well
// under a second.
const wasiSuiteTimeout = 30 * time.Second

// WASICase is one test case of the suite.
type WASICase struct {
	// Name is the case's path under tests/, without .wasm, such as
	// "rust/testsuite/wasm32-wasip1/fd_readdir".
	Name string
	Wasm string // the .wasm file
	Args []string
	Env  map[string]string
	// Root is the directory to preopen at "/", or "" for none.
	Root     string
	ExitCode uint32
	// Stdout is the expected standard output, checked only when the
	// specification gives one (HasStdout).
	Stdout    string
	HasStdout bool
}

// WASISuiteDir returns the suite's directory, skipping t (failing it under
// CI=true) when it is absent.
func WASISuiteDir(t testing.TB) string {
	t.Helper()
	dir := filepath.Join(testwasm.ModuleRoot(t), "..", "shared", "wasi-testsuite")
	if _, err := os.Stat(filepath.Join(dir, "tests")); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("the WASI test suite is required under CI=true: %v (clone github.com/WebAssembly/wasi-testsuite at %s)", err, dir)
		}
		t.Skipf("the WASI test suite is not at %s (clone github.com/WebAssembly/wasi-testsuite there to run it): %v", dir, err)
	}
	return dir
}

// WASICases lists every test case of the suite, sorted by name.
func WASICases(t testing.TB) []WASICase {
	t.Helper()
	tests := filepath.Join(WASISuiteDir(t), "tests")
	var cases []WASICase
	err := filepath.WalkDir(tests, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || filepath.Ext(p) != ".wasm" {
			return err
		}
		c, err := readWASICase(tests, p)
		if err != nil {
			return err
		}
		cases = append(cases, c)
		return nil
	})
	if err != nil {
		t.Fatalf("reading the WASI test suite: %v", err)
	}
	if len(cases) == 0 {
		t.Fatalf("no test case under %s", tests)
	}
	sort.Slice(cases, func(i, j int) bool { return cases[i].Name < cases[j].Name })
	return cases
}

// wasiSpec is the legacy form of a case's specification, the one every
// preview1 case of the suite uses.
type wasiSpec struct {
	Args     []string          `json:"args"`
	Env      map[string]string `json:"env"`
	Root     string            `json:"root"`
	ExitCode uint32            `json:"exit_code"`
	Stdout   *string           `json:"stdout"`
	// Operations is the newer form; a case that uses it is refused, so
	// that it is not silently run with defaults.
	Operations []json.RawMessage `json:"operations"`
}

func readWASICase(tests, wasm string) (WASICase, error) {
	rel, _ := filepath.Rel(tests, wasm)
	c := WASICase{Name: filepath.ToSlash(strings.TrimSuffix(rel, ".wasm")), Wasm: wasm}
	b, err := os.ReadFile(strings.TrimSuffix(wasm, ".wasm") + ".json")
	if errors.Is(err, fs.ErrNotExist) {
		return c, nil
	}
	if err != nil {
		return c, err
	}
	var spec wasiSpec
	if err := json.Unmarshal(b, &spec); err != nil {
		return c, fmt.Errorf("%s: specification: %w", c.Name, err)
	}
	if len(spec.Operations) > 0 {
		return c, fmt.Errorf("%s: operation-based specifications are not supported by this runner", c.Name)
	}
	c.Args, c.Env, c.ExitCode = spec.Args, spec.Env, spec.ExitCode
	if spec.Root != "" {
		c.Root = filepath.Join(filepath.Dir(wasm), spec.Root)
	}
	if spec.Stdout != nil {
		c.Stdout, c.HasStdout = *spec.Stdout, true
	}
	return c, nil
}

// PrepareRoot copies the case's root into a fresh temporary directory,
// without the *.cleanup entries, and returns the copy ("" when the case has
// no root).
func (c WASICase) PrepareRoot(t testing.TB) string {
	t.Helper()
	if c.Root == "" {
		return ""
	}
	dst := filepath.Join(t.TempDir(), "root")
	if err := copyTree(c.Root, dst); err != nil {
		t.Fatalf("%s: copying its root: %v", c.Name, err)
	}
	return dst
}

// copyTree copies a directory of files, directories and symbolic links,
// leaving out *.cleanup entries.
func copyTree(src, dst string) error {
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if strings.HasSuffix(d.Name(), ".cleanup") {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		out := filepath.Join(dst, rel)
		switch {
		case d.IsDir():
			return os.MkdirAll(out, 0o755)
		case d.Type()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			return os.Symlink(target, out)
		default:
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			return os.WriteFile(out, b, 0o644)
		}
	})
}

// envList is the case's environment, sorted, as KEY=VALUE.
func (c WASICase) envList() []string {
	var out []string
	for k, v := range c.Env {
		out = append(out, k+"="+v)
	}
	sort.Strings(out)
	return out
}

// Check compares a step's result with what the case expects: its exit
// code (0 for success) and, when specified, its standard output.
func (c WASICase) Check(res *abi.StepResult) error {
	var code uint32
	switch {
	case res.Status == abi.StatusSuccess:
	case res.Status == abi.StatusError && res.Error != nil && res.Error.ExitCode != nil:
		code = *res.Error.ExitCode
	default:
		b, _ := json.Marshal(res)
		return fmt.Errorf("%s: result %s, want exit code %d", c.Name, b, c.ExitCode)
	}
	if code != c.ExitCode {
		b, _ := json.Marshal(res)
		return fmt.Errorf("%s: exit code %d, want %d; result %s", c.Name, code, c.ExitCode, b)
	}
	if out := stdoutOf(res); c.HasStdout && !bytes.Equal(out, []byte(c.Stdout)) {
		return fmt.Errorf("%s: stdout %q, want %q", c.Name, out, c.Stdout)
	}
	return nil
}

// stdoutOf is the bytes a WASI command wrote to its standard output,
// whichever field of the result carries them.
func stdoutOf(res *abi.StepResult) []byte {
	switch {
	case res.Output != nil:
		return res.Output
	case res.OutputText != nil:
		return []byte(*res.OutputText)
	}
	return res.OutputBase64
}

// RunWASICase runs one case through rt.
func RunWASICase(t testing.TB, rt *host.Runtime, c WASICase) error {
	t.Helper()
	wasm, err := os.ReadFile(c.Wasm)
	if err != nil {
		return err
	}
	b, err := rt.Load(context.Background(), filepath.Base(c.Name), wasm)
	if err != nil {
		return fmt.Errorf("%s: load: %w", c.Name, err)
	}
	step := host.Step{Args: c.Args, Limits: host.Limits{Timeout: wasiSuiteTimeout}}
	step.Grants.Env = c.Env
	if root := c.PrepareRoot(t); root != "" {
		step.Grants.FS = []fscap.Grant{{HostDir: root, GuestPath: "/"}}
	}
	return c.Check(b.Run(context.Background(), step))
}

// RunWASICaseCLI runs one case through the blockhost command bin, as an
// operator would: `blockhost run --engine E --allow-dir ROOT:/:rw
// [--env K=V...] CASE.wasm ARGS...`, with compiled code kept in cacheDir.
func RunWASICaseCLI(t testing.TB, bin, engineName, cacheDir string, c WASICase) error {
	t.Helper()
	args := []string{"--log-level", "off", "run", "--cache-dir", cacheDir, "--engine", engineName, "--timeout", wasiSuiteTimeout.String()}
	for _, kv := range c.envList() {
		args = append(args, "--env", kv)
	}
	if root := c.PrepareRoot(t); root != "" {
		args = append(args, "--allow-dir", root+":/:rw")
	}
	args = append(append(args, c.Wasm), c.Args...)
	ctx, cancel := context.WithTimeout(context.Background(), 10*wasiSuiteTimeout) // a hang-catcher: compilation included
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var res abi.StepResult
	if jerr := json.Unmarshal(stdout.Bytes(), &res); jerr != nil {
		return fmt.Errorf("%s: blockhost run: %v; stdout %q, stderr %q", c.Name, err, stdout.Bytes(), stderr.Bytes())
	}
	if cerr := c.Check(&res); cerr != nil {
		return cerr
	}
	// The command's exit status follows the result: 0 for success, 1 for an
	// error (the guest's own exit code is in the result).
	want := 0
	if res.Status != abi.StatusSuccess {
		want = 1
	}
	if got := cmd.ProcessState.ExitCode(); got != want {
		return fmt.Errorf("%s: blockhost run exited %d, want %d; stderr %q", c.Name, got, want, stderr.Bytes())
	}
	return nil
}

var (
	cliOnce sync.Once
	cliBin  string
	cliErr  error
)

// CLI builds cmd/blockhost once per test process and returns the binary.
func CLI(t testing.TB) string {
	t.Helper()
	cliOnce.Do(func() {
		dir, err := os.MkdirTemp("", "blockhost-cli-")
		if err != nil {
			cliErr = err
			return
		}
		cliBin = filepath.Join(dir, "blockhost")
		cmd := exec.Command("go", "build", "-o", cliBin, "./cmd/blockhost")
		cmd.Dir = testwasm.ModuleRoot(t)
		if out, err := cmd.CombinedOutput(); err != nil {
			cliErr = fmt.Errorf("go build ./cmd/blockhost: %v\n%s", err, out)
		}
	})
	if cliErr != nil {
		t.Fatal(cliErr)
	}
	return cliBin
}

// RunWASISuite runs every case of the suite on the named engine, through
// host.Runtime and through the CLI (bin; "" skips the CLI), and reports
// the count that passed each way.
func RunWASISuite(t *testing.T, engineName, bin string) {
	cases := WASICases(t)
	// One compilation of each case, shared by the runtime and the CLI
	// through the on-disk cache, keeps the suite to seconds.
	cacheDir := t.TempDir()
	rt, err := host.NewRuntime(context.Background(), host.NewRuntimeConfig().WithEngine(engineName).WithCacheDir(cacheDir))
	if errors.Is(err, engine.ErrUnavailable) {
		t.Skipf("engine %s: %v", engineName, err)
	}
	if err != nil {
		t.Fatalf("engine %s: %v", engineName, err)
	}
	t.Cleanup(func() { rt.Close(context.Background()) })
	for _, via := range []string{"runtime", "cli"} {
		if via == "cli" && bin == "" {
			continue
		}
		t.Run(via, func(t *testing.T) {
			var mu sync.Mutex
			passed := 0
			t.Cleanup(func() { t.Logf("%s via %s: %d/%d WASI test suite cases pass", engineName, via, passed, len(cases)) })
			for _, c := range cases {
				t.Run(c.Name, func(t *testing.T) {
					t.Parallel()
					var err error
					if via == "cli" {
						err = RunWASICaseCLI(t, bin, engineName, cacheDir, c)
					} else {
						err = RunWASICase(t, rt, c)
					}
					if err != nil {
						t.Error(err)
						return
					}
					mu.Lock()
					passed++
					mu.Unlock()
				})
			}
		})
	}
}
