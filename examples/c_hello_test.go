//go:build !wasip1

package examples_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"

	"github.com/blockhost/blockhost/abi"
	"github.com/blockhost/blockhost/host"
	"github.com/blockhost/blockhost/host/engine"
	"github.com/blockhost/blockhost/host/fscap"
	"github.com/blockhost/blockhost/internal/testwasm"
)

// buildC builds a C file under examples/ as make does (Makefile, C_CFLAGS). Without a
// clang that targets wasm32-wasi the test is skipped, or fails under
// CI=true, where .ci/run installs clang, lld and wasi-libc.
func buildC(t *testing.T, src string) []byte {
	t.Helper()
	clang := os.Getenv("CLANG")
	if clang == "" {
		clang = "clang"
	}
	out := filepath.Join(t.TempDir(), "block.wasm")
	src = filepath.Join(testwasm.ModuleRoot(t), "examples", src)
	cmd := exec.Command(clang, "--target=wasm32-wasi", "-O2", "-Wall", "-Werror", "-Wl,-z,stack-size=1048576", "-o", out, src)
	if msg, err := cmd.CombinedOutput(); err != nil {
		// A compile error in our own source fails everywhere; a missing
		// toolchain skips outside CI.
		probe := exec.Command(clang, "--target=wasm32-wasi", "-x", "c", "-", "-o", filepath.Join(t.TempDir(), "probe.wasm"))
		probe.Stdin = strings.NewReader("int main(void) { return 0; }\n")
		if perr := probe.Run(); perr != nil {
			if os.Getenv("CI") == "true" {
				t.Fatalf("%s cannot target wasm32-wasi (%v): install clang, lld and wasi-libc", clang, perr)
			}
			t.Skipf("skipping: %s cannot target wasm32-wasi (%v); install clang, lld and wasi-libc (apt-get install clang lld wasi-libc libclang-rt-dev-wasm32)", clang, perr)
		}
		t.Fatalf("building %s: %v\n%s", src, err, msg)
	}
	wasm, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return wasm
}

// The C example, built with sdk/c/blockhost.h, keeps the step contract on
// every engine: JSON output, a permanent error with its code, a log
// record, and a directory grant honoured read-write and refused read-only.
func TestCHello(t *testing.T) {
	wasm := buildC(t, "c-hello/main.c")
	for _, name := range engine.Names() {
		t.Run(name, func(t *testing.T) {
			logs := &lockedBuffer{}
			logger := hclog.New(&hclog.LoggerOptions{Output: logs, JSONFormat: true, Level: hclog.Info})
			rt, err := host.NewRuntime(context.Background(), host.NewRuntimeConfig().WithEngine(name).WithLogger(logger))
			if errors.Is(err, engine.ErrUnavailable) {
				t.Skip(err)
			}
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { rt.Close(context.Background()) })
			b, err := rt.Load(context.Background(), "c-hello", wasm)
			if err != nil {
				t.Fatal(err)
			}
			if b.IsCommand() {
				t.Fatal("c-hello loaded as a plain WASI command: the header's version marker is missing")
			}

			res := b.Run(context.Background(), host.Step{Input: []byte(`a"b`)})
			if res.Status != abi.StatusSuccess || string(res.Output) != `{"greeting":"hello, a\"b"}` {
				t.Errorf("greeting: %s %s %+v", res.Status, res.Output, res.Error)
			}
			var own []map[string]any // the block's records, not the host's
			for _, r := range logs.records(t, res.StepID) {
				if r["@module"] == "guest" {
					own = append(own, r)
				}
			}
			if len(own) != 1 || own[0]["@message"] != "greeting" || own[0]["name"] != `a"b` {
				t.Errorf("block's log records %v, want one: greeting name=a\"b", own)
			}

			res = b.Run(context.Background(), host.Step{})
			if res.Status != abi.StatusError || res.Error.Code != abi.CodeMissingRequiredField || res.Error.Class != abi.ClassPermanent {
				t.Errorf("empty input: %s %+v, want missing_required_field permanent", res.Status, res.Error)
			}

			dir := t.TempDir()
			rw := host.Grants{FS: []fscap.Grant{{HostDir: dir, GuestPath: "/out"}}}
			res = b.Run(context.Background(), host.Step{Input: []byte("ana"), Grants: rw})
			got, _ := os.ReadFile(filepath.Join(dir, "greetings.txt"))
			if res.Status != abi.StatusSuccess || string(got) != "hello, ana\n" {
				t.Errorf("read-write /out: %s %+v, file %q", res.Status, res.Error, got)
			}
			ro := host.Grants{FS: []fscap.Grant{{HostDir: dir, GuestPath: "/out", ReadOnly: true}}}
			res = b.Run(context.Background(), host.Step{Input: []byte("bo"), Grants: ro})
			if res.Status != abi.StatusError || res.Error.Code != abi.CodePermissionDenied || !strings.Contains(res.Error.Message, "read-only") {
				t.Errorf("read-only /out: %s %+v, want permission_denied from the host's detail", res.Status, res.Error)
			}
		})
	}
}
