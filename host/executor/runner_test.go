package executor

import (
	"bytes"
	"context"
	"runtime"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/blockhost/blockhost/abi"
	"github.com/blockhost/blockhost/host"
)

// goroutineID is the running goroutine's number, from its stack header.
func goroutineID() string {
	buf := make([]byte, 64)
	buf = buf[:runtime.Stack(buf, false)]
	return string(bytes.Fields(buf)[1])
}

// Steps one after the other run on the same goroutine (its stack, grown by
// the first, serves the next), and Close ends the idle runners at once,
// however long they would wait for another step.
func TestExecutor_runnersReusedAndClosed(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	e, err := New(NewConfig())
	if err != nil {
		t.Fatal(err)
	}
	e.runnerIdle = time.Hour
	var ids []string
	r := newFake("id", func(context.Context, int, host.Step) *abi.StepResult {
		ids = append(ids, goroutineID())
		return &abi.StepResult{Status: abi.StatusSuccess}
	})
	for range 3 {
		wantStatus(t, e.Run(t.Context(), Request{Runner: r}), abi.StatusSuccess, 0)
		// The runner parks after the step's result is delivered; wait
		// until it does, so that the next step can find it.
		for deadline := time.Now().Add(10 * time.Second); !runnerWaiting(); time.Sleep(time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatal("no runner waits for a step")
			}
		}
	}
	if ids[0] != ids[1] || ids[1] != ids[2] {
		t.Errorf("steps ran on goroutines %v, want one", ids)
	}
	closed := make(chan error, 1)
	go func() { closed <- e.Close(context.Background()) }()
	select {
	case err := <-closed:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second): // a hang-catcher: the runner waits an hour
		t.Fatal("Close waits for an idle runner")
	}
}

// runnerWaiting reports whether a goroutine waits in runner's select.
func runnerWaiting() bool {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	for _, g := range bytes.Split(buf, []byte("\n\n")) {
		if bytes.Contains(g, []byte("executor.(*Executor).runner")) && bytes.Contains(g, []byte("[select")) {
			return true
		}
	}
	return false
}
