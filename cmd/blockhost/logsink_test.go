package main

import (
	"bytes"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

// gateWriter records what is written to it; while gate is open (not
// nil), each Write waits for it to be closed.
type gateWriter struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	calls   int
	gate    chan struct{}
	entered chan struct{} // a Write is waiting at the gate
}

func (w *gateWriter) Write(b []byte) (int, error) {
	w.mu.Lock()
	gate := w.gate
	w.mu.Unlock()
	if gate != nil {
		select {
		case w.entered <- struct{}{}:
		default:
		}
		<-gate
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.calls++
	return w.buf.Write(b)
}

func (w *gateWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

// TestLogSink_orderAndClose: lines written from several goroutines at once
// all reach the writer whole, each writer's in its order, and Close
// returns only once they are all written.
func TestLogSink_orderAndClose(t *testing.T) {
	w := &gateWriter{}
	s := newLogSink(w)
	const writers, lines = 4, 500
	var wg sync.WaitGroup
	for g := range writers {
		wg.Go(func() {
			for i := range lines {
				fmt.Fprintf(s, "w%d line %d\n", g, i)
			}
		})
	}
	wg.Wait()
	s.Close()
	written := w.String()
	got := strings.Split(strings.TrimSuffix(written, "\n"), "\n")
	if len(got) != writers*lines {
		t.Fatalf("%d lines written, want %d", len(got), writers*lines)
	}
	next := make([]int, writers)
	for _, l := range got {
		var g, i int
		if _, err := fmt.Sscanf(l, "w%d line %d", &g, &i); err != nil || g < 0 || g >= writers {
			t.Fatalf("a torn or foreign line %q", l)
		}
		if i != next[g] {
			t.Fatalf("writer %d: line %d came where line %d was due", g, i, next[g])
		}
		next[g]++
	}
	// After Close, a write is written before it returns.
	fmt.Fprintf(s, "after\n")
	if w.String() != written+"after\n" {
		t.Errorf("a write after Close was not written at once")
	}
}

// TestLogSink_writeDoesNotWait: while the writer is stuck in a write, a
// log line still returns at once (a step does not wait on standard
// error), and lines gathered meanwhile are written in one call.
func TestLogSink_writeDoesNotWait(t *testing.T) {
	w := &gateWriter{gate: make(chan struct{}), entered: make(chan struct{}, 1)}
	s := newLogSink(w)
	fmt.Fprintf(s, "first\n")
	select {
	case <-w.entered:
	case <-time.After(time.Minute): // a hang-catcher
		t.Fatal("the sink never wrote")
	}
	returned := make(chan struct{})
	go func() {
		for i := range 10 {
			fmt.Fprintf(s, "more %d\n", i)
		}
		close(returned)
	}()
	select {
	case <-returned:
	case <-time.After(time.Minute):
		t.Fatal("writes waited for the stuck writer")
	}
	w.mu.Lock()
	close(w.gate)
	w.gate = nil
	w.mu.Unlock()
	s.Close()
	want := "first\n"
	for i := range 10 {
		want += fmt.Sprintf("more %d\n", i)
	}
	if got := w.String(); got != want {
		t.Errorf("written %q, want %q", got, want)
	}
	if w.calls > 3 {
		t.Errorf("%d writes for 11 lines gathered behind one: they were not written together", w.calls)
	}
}

// TestLogSink_gathers: the sink's goroutine writes nothing before the
// gather time has passed since a line woke it, so lines that come within
// it go out in one write. (With a gather time longer than the test, Close
// writes them.)
func TestLogSink_gathers(t *testing.T) {
	w := &gateWriter{}
	s := gatheringSink(w, time.Hour)
	const lines = 5
	fmt.Fprintf(s, "line 0\n")
	// A sink that wrote lines as they came would have written the first
	// by now; a wait that ends too early only lets this test miss that.
	time.Sleep(100 * time.Millisecond)
	if got := w.String(); got != "" {
		t.Fatalf("written %q before the gather time passed", got)
	}
	for i := 1; i < lines; i++ {
		fmt.Fprintf(s, "line %d\n", i)
	}
	s.Close()
	want := ""
	for i := range lines {
		want += fmt.Sprintf("line %d\n", i)
	}
	if got := w.String(); got != want {
		t.Errorf("written %q, want %q", got, want)
	}
	w.mu.Lock()
	calls := w.calls
	w.mu.Unlock()
	if calls != 1 {
		t.Errorf("%d lines in %d writes, want one", lines, calls)
	}
}

// TestLogSink_bounded: a sink whose writer is stuck holds at most about
// maxPending bytes; the write that reaches it waits for the writer.
func TestLogSink_bounded(t *testing.T) {
	w := &gateWriter{gate: make(chan struct{}), entered: make(chan struct{}, 1)}
	s := newLogSink(w)
	line := []byte(strings.Repeat("x", 1023) + "\n")
	s.Write(line)
	<-w.entered // the goroutine is stuck writing the first line
	filled := make(chan int)
	go func() {
		n := 0
		for n < 2*maxPending/len(line) {
			s.Write(line)
			n++
		}
		filled <- n
	}()
	select {
	case n := <-filled:
		t.Fatalf("%d lines (%d bytes) taken while the writer was stuck", n, n*len(line))
	case <-time.After(200 * time.Millisecond):
		// Still writing: the writes were held back. (A wait that ends early
		// only lets this check miss; it cannot fail a correct sink.)
	}
	w.mu.Lock()
	close(w.gate)
	w.gate = nil
	w.mu.Unlock()
	n := <-filled
	s.Close()
	if got, want := len(w.String()), (n+1)*len(line); got != want {
		t.Errorf("%d bytes written, want %d", got, want)
	}
}
