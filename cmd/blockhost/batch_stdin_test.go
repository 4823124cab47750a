package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/blockhost/blockhost/abi"
	"github.com/blockhost/blockhost/internal/testwasm"
)

// sleepModule is examples/sleep: a WASI command that sleeps ten seconds.
func sleepModule(t *testing.T) string {
	return testwasm.GoFile(t, filepath.Join("..", "..", "examples", "sleep"))
}

// TestBatch_secondInterruptStopsReadingStdin runs batch on standard input
// whose writer stays open, as a terminal or a FIFO's writer would: the
// first Ctrl-C cannot end the reading, the second must. Every line read
// gets a result, the running one cancelled, and the exit code is 130.
func TestBatch_secondInterruptStopsReadingStdin(t *testing.T) {
	hello := helloModule(t)
	inR, inW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer inW.Close() // held open until the end: only the signals end the input
	cmd := exec.Command(os.Args[0], "--log-level", "off", "batch", "--cache-dir", t.TempDir(), "--concurrency", "2", "-")
	cmd.Env = append(os.Environ(), "BLOCKHOST_TEST_MAIN=1")
	cmd.Stdin = inR
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	// exec copies the child's stderr from a goroutine of its own: the
	// buffer is read here while that copy may still be writing.
	var stderr syncBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	inR.Close()
	// A hang-catcher, not a latency bound.
	killer := time.AfterFunc(3*time.Minute, func() { cmd.Process.Kill() })
	defer killer.Stop()

	results := make(chan abi.StepResult)
	go func() {
		defer close(results)
		sc := bufio.NewScanner(stdout)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			var r abi.StepResult
			if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
				t.Errorf("not a result: %q", sc.Text())
				continue
			}
			results <- r
		}
	}()
	// One line that finishes, so the batch is known to be reading.
	fmt.Fprintf(inW, "{\"step_id\":\"first\",\"block\":%q,\"input\":{\"name\":\"a\"}}\n", hello)
	if r, ok := <-results; !ok || r.StepID != "first" || r.Status != abi.StatusSuccess {
		t.Fatalf("first result %+v (%v); stderr:\n%s", r, ok, stderr.String())
	}
	// A line that is still running when the signals come: a guest that
	// sleeps far longer than the test waits.
	fmt.Fprintf(inW, "{\"step_id\":\"long\",\"block\":%q,\"timeout\":\"1h\"}\n", sleepModule(t))
	time.Sleep(200 * time.Millisecond)
	for range 2 {
		if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
			t.Fatal(err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	got := map[string]abi.StepResult{}
	for r := range results {
		got[r.StepID] = r
	}
	err = cmd.Wait()
	if code := cmd.ProcessState.ExitCode(); code != exitCancelled {
		t.Fatalf("exit %d (%v), want %d; stderr:\n%s", code, err, exitCancelled, stderr.String())
	}
	if r, ok := got["long"]; !ok || r.Status != abi.StatusCancelled {
		t.Errorf("the running line's result %+v (present %v), want cancelled; stderr:\n%s", r, ok, stderr.String())
	}
}

// syncBuffer is a bytes.Buffer safe for one writer and concurrent readers.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
