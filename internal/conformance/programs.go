package conformance

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/blockhost/blockhost/abi"
	"github.com/blockhost/blockhost/host"
	"github.com/blockhost/blockhost/internal/testwasm"
)

// Programs nobody here wrote: the WASI test programs that
// github.com/tetratelabs/wazero ships, built by cargo-wasi (Rust), TinyGo,
// Zig and zig cc (C with wasi-libc), plus two WebAssembly text ones. They
// come with the wazero module, which `go mod download` puts in the module
// cache. Only their commands that need no file system or socket run here;
// each program's source sits beside it.

var (
	wazeroDirOnce sync.Once
	wazeroDir     string
	wazeroDirErr  string
)

// ThirdPartyDir returns wazero's imports/wasi_snapshot_preview1/testdata
// in the module cache.
func ThirdPartyDir(t testing.TB) string {
	t.Helper()
	wazeroDirOnce.Do(func() {
		cmd := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/tetratelabs/wazero")
		cmd.Dir = testwasm.ModuleRoot(t)
		out, err := cmd.Output()
		dir := strings.TrimSpace(string(out))
		if err != nil || dir == "" {
			wazeroDirErr = "cannot locate github.com/tetratelabs/wazero in the module cache (run go mod download): " + errString(err)
			return
		}
		wazeroDir = filepath.Join(dir, "imports", "wasi_snapshot_preview1", "testdata")
	})
	if wazeroDirErr != "" {
		t.Fatal(wazeroDirErr)
	}
	return wazeroDir
}

func errString(err error) string {
	if err == nil {
		return "no directory"
	}
	if ee, ok := err.(*exec.ExitError); ok {
		return err.Error() + ": " + string(ee.Stderr)
	}
	return err.Error()
}

// ThirdParty returns the bytes of one of those programs, by its path
// under ThirdPartyDir.
func ThirdParty(t testing.TB, rel string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(ThirdPartyDir(t), rel))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// ThirdPartyCase is one run of a third-party program: its argv after the
// program name, its standard input and what must come of it.
type ThirdPartyCase struct {
	Name    string
	Program string // path under ThirdPartyDir
	Args    []string
	Stdin   string
	Timeout time.Duration
	Want    Want
}

const allFalse = "stdin isatty: false\nstdout isatty: false\nstderr isatty: false\n/ isatty: false\n"

// ThirdPartyCases are the runs of third-party programs every engine must
// get right; cmd/blockhost runs them through the CLI too.
var ThirdPartyCases = []ThirdPartyCase{
	// Rust: std's isatty on the three streams and fd 3, which does not exist.
	{Name: "rust/stat", Program: "cargo-wasi/wasi.wasm", Args: []string{"stat"},
		Want: Want{Status: abi.StatusSuccess, OutputText: allFalse}},
	// An unknown command: a message on stderr and exit code 1.
	{Name: "rust/unknown", Program: "cargo-wasi/wasi.wasm", Args: []string{"bogus"},
		Want: Want{Status: abi.StatusError, Code: abi.CodeExecutionFailed, Class: abi.ClassPermanent, Msg: "exited with code 1", ExitCode: exit(1)}},
	// TinyGo: stat of fd 3 fails and the program panics, which TinyGo turns
	// into a trap; what it wrote before stays, because the block failed on
	// its own terms.
	{Name: "tinygo/stat", Program: "tinygo/wasi.wasm", Args: []string{"stat"},
		Want: Want{Status: abi.StatusError, Code: abi.CodeExecutionFailed, Class: abi.ClassPermanent, Msg: "wasm trap: unreachable",
			OutputText: "stdin isatty: false\nstdout isatty: false\nstderr isatty: false\npanic: fstat : errno 8\n"}},
	{Name: "tinygo/noop", Program: "tinygo/wasi.wasm", Args: []string{"sock"},
		Want: Want{Status: abi.StatusSuccess, NoOutput: true}},
	// Zig's standard library.
	{Name: "zig/stat", Program: "zig/wasi.wasm", Args: []string{"stat"},
		Want: Want{Status: abi.StatusSuccess, OutputText: allFalse}},
	// No directory is granted: the only descriptors are the three streams.
	{Name: "zig/preopen", Program: "zig/wasi.wasm", Args: []string{"preopen"},
		Want: Want{Status: abi.StatusSuccess, OutputText: "0: stdin\n1: stdout\n2: stderr\n"}},
	// C (wasi-libc).
	{Name: "c/stat", Program: "zig-cc/wasi.wasm", Args: []string{"stat"},
		Want: Want{Status: abi.StatusSuccess, OutputText: allFalse}},
	// nanosleep: a poll_oneoff with one relative clock subscription.
	{Name: "c/sleep", Program: "zig-cc/wasi.wasm", Args: []string{"sleepmillis", "50"},
		Want: Want{Status: abi.StatusSuccess, OutputText: "OK\n"}},
	// select on stdin with a timeout: poll_oneoff with an fd_read and a
	// clock subscription. The step's standard input is always ready.
	{Name: "c/select", Program: "zig-cc/wasi.wasm", Args: []string{"poll", "1", "0"}, Stdin: "ready",
		Want: Want{Status: abi.StatusSuccess, OutputText: "STDIN\n"}},
	// A sleep far longer than the step: interrupted at the timeout.
	// (sleepmillis takes at most 999: it fills in nanoseconds only.)
	{Name: "c/sleepTimeout", Program: "zig-cc/wasi.wasm", Args: []string{"sleepmillis", "900"}, Timeout: 200 * time.Millisecond,
		Want: Want{Status: abi.StatusTimeout, Code: abi.CodeCancelledByTimeout, Class: abi.ClassPermanent, Msg: "200ms timeout", NoOutput: true}},
	{Name: "c/unknown", Program: "zig-cc/wasi.wasm", Args: []string{"bogus"},
		Want: Want{Status: abi.StatusError, Code: abi.CodeExecutionFailed, Class: abi.ClassPermanent, Msg: "exited with code 1", ExitCode: exit(1)}},
	{Name: "wat/printArgs", Program: "print_args.wasm", Args: []string{"one", "two"},
		Want: Want{Status: abi.StatusSuccess, OutputText: "print_args\x00one\x00two\x00"}},
	{Name: "wat/exitOnStart", Program: "exit_on_start.wasm",
		Want: Want{Status: abi.StatusError, Code: abi.CodeExecutionFailed, Class: abi.ClassPermanent, Msg: "exited with code 2", ExitCode: exit(2)}},
}

// BlockName is the name a third-party case's block runs under, which is
// also its program name (argv[0]): the file's name without .wasm, as
// `blockhost run` names it.
func (c ThirdPartyCase) BlockName() string {
	return strings.TrimSuffix(filepath.Base(c.Program), ".wasm")
}

func (s *Suite) testThirdParty(t *testing.T) {
	for _, tc := range ThirdPartyCases {
		t.Run(tc.Name, func(t *testing.T) {
			b := s.LoadBytes(t, tc.BlockName(), ThirdParty(t, tc.Program))
			if !b.IsCommand() {
				t.Fatalf("%s: %s is not taken for a WASI command", s.Engine, tc.Program)
			}
			start := time.Now()
			res := b.Run(context.Background(), host.Step{Input: []byte(tc.Stdin), Args: tc.Args, Limits: host.Limits{Timeout: tc.Timeout}})
			Check(t, s.Engine, res, tc.Want)
			if tc.Timeout > 0 && time.Since(start) > tc.Timeout+lateBound {
				t.Errorf("%s: took %v with a %v timeout", s.Engine, time.Since(start), tc.Timeout)
			}
		})
	}
}

// goBlocks are the repository's own Go examples, built for wasip1 by the
// standard Go toolchain: the SDK's ABI blocks and plain WASI commands.
var goBlocks = []struct {
	name    string
	example string
	input   string
	limits  host.Limits
	want    Want
}{
	{"hello", "hello", `{"name":"ana"}`, host.Limits{}, Want{Status: abi.StatusSuccess, Output: `{"greeting":"hello, ana"}`}},
	{"helloMissingName", "hello", `{}`, host.Limits{}, Want{Status: abi.StatusError, Code: abi.CodeMissingRequiredField, Class: abi.ClassPermanent, Msg: `input has no "name"`}},
	{"flaky", "flaky", ``, host.Limits{}, Want{Status: abi.StatusError, Code: abi.CodeResourceUnavailable, Class: abi.ClassRetryable, Msg: "try again later"}},
	{"wasiEcho", "wasi-echo", `abc`, host.Limits{}, Want{Status: abi.StatusSuccess, OutputText: "ABC"}},
	{"wasiEchoEmpty", "wasi-echo", ``, host.Limits{}, Want{Status: abi.StatusError, Code: abi.CodeExecutionFailed, Class: abi.ClassPermanent, Msg: "exited with code 3", ExitCode: exit(3)}},
	{"sleep", "sleep", ``, host.Limits{Timeout: 200 * time.Millisecond}, Want{Status: abi.StatusTimeout, Code: abi.CodeCancelledByTimeout, Class: abi.ClassPermanent, NoOutput: true}},
	{"loop", "loop", ``, host.Limits{Timeout: 200 * time.Millisecond}, Want{Status: abi.StatusTimeout, Code: abi.CodeCancelledByTimeout, Class: abi.ClassPermanent, NoOutput: true}},
	{"membomb", "membomb", ``, host.Limits{Memory: 32 << 20}, Want{Status: abi.StatusError, Code: abi.CodeQuotaExceeded, Class: abi.ClassPermanent, Msg: "32 MiB"}},
}

// GoExample returns the bytes of one of the repository's Go examples.
func GoExample(t testing.TB, name string) []byte {
	t.Helper()
	return testwasm.Go(t, filepath.Join(testwasm.ModuleRoot(t), "examples", name))
}

func (s *Suite) testGoBlocks(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and compiles Go modules")
	}
	blocks := map[string]*host.Block{}
	for _, tc := range goBlocks {
		t.Run(tc.name, func(t *testing.T) {
			b, ok := blocks[tc.example]
			if !ok {
				b = s.LoadBytes(t, tc.example, GoExample(t, tc.example))
				blocks[tc.example] = b
			}
			start := time.Now()
			res := b.Run(context.Background(), host.Step{Input: []byte(tc.input), Limits: tc.limits})
			Check(t, s.Engine, res, tc.want)
			if tc.limits.Timeout > 0 && time.Since(start) > tc.limits.Timeout+lateBound {
				t.Errorf("%s: took %v with a %v timeout", s.Engine, time.Since(start), tc.limits.Timeout)
			}
		})
	}
}

// testConcurrent runs many steps of different kinds at once on one runtime:
// interruption, memory limits and output must stay per step.
func (s *Suite) testConcurrent(t *testing.T) {
	kinds := []Step{
		{Fixture: "echo", Input: `{"n":1}`, Want: Want{Status: abi.StatusSuccess, Output: `{"n":1}`}},
		{Fixture: "loop", Limits: host.Limits{Timeout: 30 * time.Millisecond}, Want: Want{Status: abi.StatusTimeout, Code: abi.CodeCancelledByTimeout, Class: abi.ClassPermanent}},
		{Fixture: "wasisleep", Limits: host.Limits{Timeout: 30 * time.Millisecond}, Want: Want{Status: abi.StatusTimeout, Code: abi.CodeCancelledByTimeout, Class: abi.ClassPermanent}},
		{Fixture: "membomb", Limits: host.Limits{Memory: 4 << 20}, Want: Want{Status: abi.StatusError, Code: abi.CodeQuotaExceeded, Class: abi.ClassPermanent}},
		{Fixture: "grow", Input: "pppp", Limits: host.Limits{Memory: 4 << 20}, Want: Want{Status: abi.StatusSuccess, OutputText: "grown"}},
		{Fixture: "wasiecho", Input: "concurrent", Want: Want{Status: abi.StatusSuccess, OutputText: "concurrent"}},
	}
	blocks := make([]*host.Block, len(kinds))
	for i, k := range kinds {
		blocks[i] = s.Load(t, k.Fixture)
	}
	const rounds = 8
	var wg sync.WaitGroup
	errs := make(chan string, rounds*len(kinds))
	for r := range rounds {
		for i, k := range kinds {
			wg.Add(1)
			go func() {
				defer wg.Done()
				res := blocks[i].Run(context.Background(), k.step())
				ok := res.Status == k.Want.Status && (res.Error == nil) == (k.Want.Status == abi.StatusSuccess)
				if ok && res.Error != nil {
					ok = res.Error.Code == k.Want.Code
				}
				if ok && k.Want.OutputText != "" {
					ok = deref(res.OutputText) == k.Want.OutputText
				}
				if ok && k.Want.Output != "" {
					ok = string(res.Output) == k.Want.Output
				}
				if !ok {
					b, _ := json.Marshal(res)
					errs <- k.Fixture + " (round " + string(rune('0'+r)) + "): " + string(b)
				}
			}()
		}
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Errorf("%s: %s", s.Engine, e)
	}
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}
