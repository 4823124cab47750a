package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/blockhost/blockhost/abi"
)

// TestBatch_closedPipeEndsQuietly is `blockhost batch - | head -1`: the
// reader of standard output goes away after the first result. The batch
// must end with exit 3 (docs/cli.md), not die of SIGPIPE (141), and say
// nothing: no message, no summary, no Go stack.
//
// The input comes through a pipe the test writes, so that the closed read
// end is certain to be hit: the first line's result is read, the read end
// closed, and only then are the other 49 lines written.
func TestBatch_closedPipeEndsQuietly(t *testing.T) {
	hello := helloModule(t)
	const steps = 50
	inR, inW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer inW.Close()
	outR, outW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "--log-level", "off", "batch", "--cache-dir", t.TempDir(), "--concurrency", "2", "-")
	cmd.Env = append(os.Environ(), "BLOCKHOST_TEST_MAIN=1")
	cmd.Stdin, cmd.Stdout = inR, outW
	var stderr syncBuffer // written by exec's copying goroutine while the test reads it
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	inR.Close()
	outW.Close() // the child holds the only write end
	// A hang-catcher, not a latency bound.
	killer := time.AfterFunc(3*time.Minute, func() { cmd.Process.Kill() })
	defer killer.Stop()

	lineOf := func(i int) string {
		return fmt.Sprintf("{\"step_id\":\"s%d\",\"block\":%q,\"input\":{\"name\":\"n%d\"}}\n", i, hello, i)
	}
	fmt.Fprint(inW, lineOf(0))
	first, err := bufio.NewReader(outR).ReadString('\n')
	if err != nil {
		t.Fatalf("reading the first result: %v; stderr:\n%s", err, stderr.String())
	}
	var r abi.StepResult
	if err := json.Unmarshal([]byte(first), &r); err != nil || r.StepID != "s0" {
		t.Fatalf("first result %q (%v)", first, err)
	}
	outR.Close() // as head -1 does
	for i := 1; i < steps; i++ {
		// The batch may stop reading once a write fails: a write error
		// here is the batch having gone, not a failure.
		if _, err := fmt.Fprint(inW, lineOf(i)); err != nil {
			break
		}
	}
	inW.Close()

	err = cmd.Wait()
	if code := cmd.ProcessState.ExitCode(); code != exitOutput {
		t.Fatalf("exit %d (%v), want %d (results could not be written); stderr:\n%s", code, err, exitOutput, stderr.String())
	}
	// docs/cli.md: "ends the batch quietly with exit 3: no message, no
	// summary". Logs are off, so standard error must be empty.
	if s := stderr.String(); strings.Contains(s, "panic") || strings.Contains(s, "goroutine ") || s != "" {
		t.Fatalf("stderr not quiet after the reader went away:\n%s", s)
	}
}
