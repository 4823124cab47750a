package conformance_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/blockhost/blockhost/abi"
	"github.com/blockhost/blockhost/host/engine"
	"github.com/blockhost/blockhost/internal/conformance"
	"github.com/blockhost/blockhost/internal/testwasm"
)

// hangCatcher bounds how long a blockhost process may take in these tests,
// compilation included; the behaviour checked is in the result.
const hangCatcher = 5 * time.Minute

// TestCLI_blockedGuest runs, through the blockhost command on every engine,
// a WASI guest that opens a FIFO no one writes to: the step ends as timeout
// with exit code 124 on time, and SIGTERM ends the process, as cancelled.
func TestCLI_blockedGuest(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the CLI")
	}
	bin := conformance.CLI(t)
	guest := testwasm.GoFile(t, filepath.Join(testwasm.ModuleRoot(t), "host", "testdata", "fswasi"))
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
	os.WriteFile(filepath.Join(dir, "in.txt"), []byte("x"), 0o644)
	cache := t.TempDir()
	run := func(t *testing.T, name, timeout, path string) (*exec.Cmd, *bytes.Buffer) {
		in, _ := json.Marshal(map[string]any{"ops": []map[string]string{{"op": "read", "path": path}}})
		ctx, cancel := context.WithTimeout(context.Background(), hangCatcher)
		t.Cleanup(cancel)
		cmd := exec.CommandContext(ctx, bin, "--log-level", "off", "run", "--engine", name, "--cache-dir", cache,
			"--timeout", timeout, "--allow-dir", dir+":/data:ro", "--input", string(in), guest)
		var out bytes.Buffer
		cmd.Stdout = &out
		return cmd, &out
	}
	result := func(t *testing.T, out *bytes.Buffer) abi.StepResult {
		var res abi.StepResult
		if err := json.Unmarshal(out.Bytes(), &res); err != nil {
			t.Fatalf("no result: %v; stdout %q", err, out.Bytes())
		}
		return res
	}
	for _, name := range engine.Names() {
		t.Run(name, func(t *testing.T) {
			// Compiles the guest into the cache, so that the runs below
			// start at once.
			cmd, out := run(t, name, "30s", "/data/in.txt")
			if err := cmd.Run(); err != nil || result(t, out).Status != abi.StatusSuccess {
				t.Fatalf("reading a file: %v %s", err, out.Bytes())
			}

			cmd, out = run(t, name, "1s", "/data/fifo")
			err := cmd.Run()
			res := result(t, out)
			if res.Status != abi.StatusTimeout || cmd.ProcessState.ExitCode() != 124 {
				t.Fatalf("FIFO with no writer: %v, status %s, want timeout and exit code 124; %s", err, res.Status, out.Bytes())
			}
			if late := time.Duration(res.LatencyMS*float64(time.Millisecond)) - time.Second; late > time.Second {
				t.Errorf("the step ended %v after its timeout", late)
			}

			cmd, out = run(t, name, "60s", "/data/fifo")
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			time.Sleep(time.Second) // the guest is blocked in its open by now
			cmd.Process.Signal(syscall.SIGTERM)
			err = cmd.Wait()
			if res := result(t, out); res.Status != abi.StatusCancelled || cmd.ProcessState.ExitCode() != 130 {
				t.Fatalf("SIGTERM: %v, status %s, want cancelled and exit code 130; %s", err, res.Status, out.Bytes())
			}
		})
	}
}
