package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// offline is the environment of a build in a new project: no module
// proxy, no workspace, no toolchain download, so that anything the project
// needs from the network fails the build.
func offline(env ...string) []string {
	return append(append(os.Environ(), env...), "GOFLAGS=-mod=mod", "GOPROXY=off", "GOWORK=off", "GOTOOLCHAIN=local")
}

func runIn(t *testing.T, dir string, env []string, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir, cmd.Env = dir, env
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s in %s: %v\n%s", name, strings.Join(args, " "), dir, err, out)
	}
	return string(out)
}

// A new Go project builds for wasip1 and passes its own test as created,
// with no network: the SDK it needs is in the project.
func TestInit_go(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "greeter")
	r := runCLI(t, "", "init", dir)
	if r.code != exitSuccess || !strings.Contains(r.stdout, "make test") {
		t.Fatalf("init: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	for _, f := range []string{"main.go", "main_test.go", "block.hcl", "Makefile", "blockhost-sdk/sdk/sdk.go", "blockhost-sdk/sdk/sdktest/sdktest.go"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Errorf("project has no %s: %v", f, err)
		}
	}
	if out := runIn(t, dir, offline(), "go", "test", "-count=1", "./..."); !strings.Contains(out, "ok") {
		t.Errorf("go test: %s", out)
	}
	r = runCLI(t, "", "build", dir, "-o", filepath.Join(dir, "greeter.wasm"))
	if r.code != exitSuccess {
		t.Fatalf("blockhost build of the new project: exit %d\n%s", r.code, r.stderr)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "greeter.wasm")); err != nil || !strings.HasPrefix(string(b), "\x00asm") {
		t.Errorf("greeter.wasm is not a WebAssembly module (%v)", err)
	}
	// blockhost build makes a block that uses the SDK a reactor whose steps
	// start from a snapshot; --command makes it a command, as go build does.
	r = runCLI(t, "", "build", "--command", dir, "-o", filepath.Join(dir, "greeter-command.wasm"))
	if r.code != exitSuccess {
		t.Fatalf("blockhost build --command: exit %d\n%s", r.code, r.stderr)
	}
	// The exports say which: wasm-objdump (WABT, which the tests need for
	// wat2wasm anyway) lists them without compiling the module, which takes
	// a minute under the race detector.
	objdump, err := exec.LookPath("wasm-objdump")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("wasm-objdump not found: install wabt")
		}
		t.Skip("wasm-objdump not found (install wabt): the kind of module built is not checked")
	}
	for file, want := range map[string][]string{
		"greeter.wasm":         {"_initialize", "blockhost_run", "blockhost_snapshot", "blockhost_abi_v1", "!_start"},
		"greeter-command.wasm": {"_start", "blockhost_abi_v1", "!_initialize"},
	} {
		out, err := exec.Command(objdump, "-j", "Export", "-x", filepath.Join(dir, file)).CombinedOutput()
		if err != nil {
			t.Fatalf("wasm-objdump %s: %v\n%s", file, err, out)
		}
		exports := map[string]bool{}
		for _, line := range strings.Split(string(out), "\n") {
			if _, name, ok := strings.Cut(line, "-> \""); ok {
				exports[strings.TrimSuffix(strings.TrimSpace(name), "\"")] = true
			}
		}
		for _, w := range want {
			if name, absent := strings.CutPrefix(w, "!"); absent && exports[name] || !absent && !exports[w] {
				t.Errorf("%s: exports %v, want %v", file, exports, want)
				break
			}
		}
	}
}

// --sdk points the replace directive at a checkout instead of a copy.
func TestInit_goFromCheckout(t *testing.T) {
	checkout, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "fromcheckout")
	if r := runCLI(t, "", "init", dir, "--sdk", checkout); r.code != exitSuccess {
		t.Fatalf("init --sdk: exit %d\n%s", r.code, r.stderr)
	}
	gomod, _ := os.ReadFile(filepath.Join(dir, "go.mod"))
	if !strings.Contains(string(gomod), "=> "+filepath.ToSlash(checkout)) {
		t.Errorf("go.mod does not replace the module with the checkout:\n%s", gomod)
	}
	if _, err := os.Stat(filepath.Join(dir, "blockhost-sdk")); err == nil {
		t.Error("init --sdk wrote a copy of the SDK too")
	}
	runIn(t, dir, offline("GOOS=wasip1", "GOARCH=wasm"), "go", "build", "-o", "b.wasm", ".")
}

// init never writes over anything: an existing NAME that is not an empty
// directory, a bad name or language is refused with exit 2, nothing
// changed.
func TestInit_refuses(t *testing.T) {
	base := t.TempDir()
	full := filepath.Join(base, "full")
	os.Mkdir(full, 0o755)
	os.WriteFile(filepath.Join(full, "main.go"), []byte("mine"), 0o644)
	file := filepath.Join(base, "afile")
	os.WriteFile(file, []byte("mine"), 0o644)
	for _, args := range [][]string{
		{"init", full},
		{"init", file},
		{"init", filepath.Join(base, "1bad")},
		{"init", filepath.Join(base, "ok"), "--lang", "rust"},
		{"init", filepath.Join(base, "ok"), "--sdk", base},
		{"init"},
	} {
		r := runCLI(t, "", args...)
		if r.code != exitUsage || strings.Count(strings.TrimSpace(r.stderr), "\n") != 0 {
			t.Errorf("%q: exit %d, stderr %q; want 2 and one line", args, r.code, r.stderr)
		}
	}
	if b, _ := os.ReadFile(filepath.Join(full, "main.go")); string(b) != "mine" {
		t.Errorf("init changed a file in an existing directory: %q", b)
	}
	if b, _ := os.ReadFile(file); string(b) != "mine" {
		t.Errorf("init changed an existing file: %q", b)
	}
	if _, err := os.Stat(filepath.Join(base, "ok")); err == nil {
		t.Error("a refused init created its directory")
	}
	// An empty directory is fine.
	empty := filepath.Join(base, "empty")
	os.Mkdir(empty, 0o755)
	if r := runCLI(t, "", "init", empty); r.code != exitSuccess {
		t.Errorf("init into an empty directory: exit %d %s", r.code, r.stderr)
	}
}

// A new C project builds with clang for wasm32-wasi and passes its own
// test (make test runs it under this blockhost) as created.
func TestInit_c(t *testing.T) {
	probe := exec.Command("clang", "--target=wasm32-wasi", "-x", "c", "-", "-o", filepath.Join(t.TempDir(), "probe.wasm"))
	probe.Stdin = strings.NewReader("int main(void) { return 0; }\n")
	_, makeErr := exec.LookPath("make")
	if err := probe.Run(); err != nil || makeErr != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("clang for wasm32-wasi (%v) or make (%v) missing: .ci/run installs clang, lld, wasi-libc and make", err, makeErr)
		}
		t.Skipf("skipping: clang cannot target wasm32-wasi (%v) or make is missing (%v); install clang lld wasi-libc libclang-rt-dev-wasm32", err, makeErr)
	}
	dir := filepath.Join(t.TempDir(), "cblock")
	if r := runCLI(t, "", "init", dir, "--lang", "c"); r.code != exitSuccess {
		t.Fatalf("init --lang c: exit %d\n%s", r.code, r.stderr)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	// This test binary is the CLI when BLOCKHOST_TEST_MAIN=1 (TestMain).
	out := runIn(t, dir, append(os.Environ(), "BLOCKHOST_TEST_MAIN=1"), "make", "test", "BLOCKHOST="+self)
	if !strings.Contains(out, "ok") {
		t.Errorf("make test: %s", out)
	}
}
