package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/blockhost/blockhost/host/worker"
	wt "github.com/blockhost/blockhost/host/worker/workertest"
)

// slowServer is a loopback HTTP server that answers after ?ms=N
// milliseconds and counts the requests of each ?id=.
type slowServer struct {
	*httptest.Server
	mu   sync.Mutex
	hits map[string]int
}

func newSlowServer(t *testing.T) *slowServer {
	s := &slowServer{hits: map[string]int{}}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.hits[r.URL.Query().Get("id")]++
		s.mu.Unlock()
		ms, _ := strconv.Atoi(r.URL.Query().Get("ms"))
		select {
		case <-time.After(time.Duration(ms) * time.Millisecond):
		case <-r.Context().Done():
		}
		fmt.Fprint(w, "ok")
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *slowServer) totalHits() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, h := range s.hits {
		n += h
	}
	return n
}

func (s *slowServer) grant() string { return s.URL + "/ allow_ranges=127.0.0.1/32" }

// publishHTTP publishes n http.request assignments to s, each taking ms.
func publishHTTP(t *testing.T, js jetstream.JetStream, s *slowServer, prefix string, n, ms int) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ids := make([]string, n)
	var futures []jetstream.PubAckFuture
	for i := range n {
		ids[i] = prefix + strconv.Itoa(i)
		url := fmt.Sprintf("%s/?id=%s&ms=%d", s.URL, ids[i], ms)
		f, err := js.PublishAsync(worker.SubjectAssign, wt.Assignment(ids[i], "http.request", map[string]any{"method": "GET", "url": url}),
			jetstream.WithMsgID(ids[i]))
		if err != nil {
			t.Fatal(err)
		}
		futures = append(futures, f)
	}
	for _, f := range futures {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			t.Fatal(err)
		case <-ctx.Done():
			t.Fatal("publishing timed out")
		}
	}
	return ids
}

// workerProc is a `blockhost worker` process: this test binary as the CLI.
type workerProc struct {
	cmd    *exec.Cmd
	stderr *bytes.Buffer
	done   chan error
}

func startWorkerProc(t *testing.T, args ...string) *workerProc {
	t.Helper()
	cmd := exec.Command(os.Args[0], append([]string{"--log-level", "warn", "worker", "--http", "off", "--no-cache"}, args...)...)
	cmd.Env = append(os.Environ(), "BLOCKHOST_TEST_MAIN=1")
	p := &workerProc{cmd: cmd, stderr: &bytes.Buffer{}, done: make(chan error, 1)}
	cmd.Stderr = &lockedWriter{w: p.stderr}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.done <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-p.done
		if t.Failed() {
			t.Logf("worker %v stderr:\n%s", args, p.stderr)
		}
	})
	return p
}

// wait returns the process's exit code once it exits; it fails the test
// if the hang-catcher passes first.
func (p *workerProc) wait(t *testing.T) int {
	t.Helper()
	select {
	case <-p.done:
		p.done <- nil // for the cleanup
		return p.cmd.ProcessState.ExitCode()
	case <-time.After(60 * time.Second):
		t.Fatal("the worker did not exit")
		return -1
	}
}

type lockedWriter struct {
	mu sync.Mutex
	w  *bytes.Buffer
}

func (l *lockedWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(b)
}

// waitHeartbeat waits for a heartbeat of worker id.
func waitHeartbeat(t *testing.T, nc *nats.Conn, id string) {
	t.Helper()
	sub, err := nc.SubscribeSync(worker.SubjectHeartbeat)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		m, err := sub.NextMsg(time.Second)
		if err != nil {
			continue
		}
		var hb worker.Heartbeat
		if json.Unmarshal(m.Data, &hb) == nil && hb.WorkerID == id {
			return
		}
	}
	t.Fatalf("no heartbeat from worker %s", id)
}

// resultsByWorker counts the results stream's results by worker id.
func resultsByWorker(got map[string]worker.Result) map[string]int {
	by := map[string]int{}
	for _, r := range got {
		by[r.Metadata["worker_id"]]++
	}
	return by
}

// Two worker processes share one server; one is killed with SIGKILL in
// the middle of its steps. Every assignment still has exactly one result
// in the results stream.
func TestWorker_killNine(t *testing.T) {
	srv := wt.StartServer(t, "")
	nc := wt.Connect(t, srv.ClientURL())
	js := wt.JetStream(t, nc)
	slow := newSlowServer(t)
	common := []string{"--nats", srv.ClientURL(), "--concurrency", "8", "--ack-wait", "2s", "--heartbeat", "100ms", "--allow-http", slow.grant()}
	victim := startWorkerProc(t, append(common, "--worker-id", "victim")...)
	startWorkerProc(t, append(common, "--worker-id", "survivor")...)
	waitHeartbeat(t, nc, "victim")
	waitHeartbeat(t, nc, "survivor")

	ids := publishHTTP(t, js, slow, "k-", 500, 20)
	wt.Eventually(t, 60*time.Second, "100 results", func() bool { return wt.StreamMsgs(t, js, worker.StreamResult) >= 100 })
	if err := victim.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	victim.wait(t)
	killedAt := wt.StreamMsgs(t, js, worker.StreamResult)

	got := wt.Results(t, js, len(ids), 90*time.Second)
	for _, id := range ids {
		if r, ok := got[id]; !ok || r.Status != worker.StatusSuccess {
			t.Fatalf("%s: %+v", id, r)
		}
	}
	by := resultsByWorker(got)
	if by["victim"] == 0 || by["survivor"] == 0 {
		t.Fatalf("results by worker: %v", by)
	}
	if n := wt.StreamMsgs(t, js, worker.StreamResult); n != 500 {
		t.Fatalf("results stream holds %d results, want 500", n)
	}
	wt.Eventually(t, 10*time.Second, "assignment stream empty", func() bool { return wt.StreamMsgs(t, js, worker.StreamAssign) == 0 })
	t.Logf("killed after %d results; results by worker %v; %d HTTP requests for 500 assignments", killedAt, by, slow.totalHits())
}

// The worker's embedded server is stopped (SIGTERM drains the worker and
// stops the server) and started again on the same store: the
// assignments still queued are all run.
func TestWorker_restartOnSameStore(t *testing.T) {
	addr := wt.FreeAddr(t)
	store := t.TempDir()
	slow := newSlowServer(t)
	args := []string{"--nats-listen", addr, "--store", store, "--concurrency", "2", "--heartbeat", "100ms", "--allow-http", slow.grant()}
	first := startWorkerProc(t, append(args, "--worker-id", "first")...)
	var nc *nats.Conn
	wt.Eventually(t, 60*time.Second, "the embedded server", func() bool {
		var err error
		nc, err = nats.Connect("nats://"+addr, nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
		return err == nil
	})
	defer nc.Close()
	waitHeartbeat(t, nc, "first")
	js := wt.JetStream(t, nc)
	ids := publishHTTP(t, js, slow, "r-", 40, 50)
	wt.Eventually(t, 30*time.Second, "4 results", func() bool { return wt.StreamMsgs(t, js, worker.StreamResult) >= 4 })
	if err := first.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := first.wait(t); code != 0 {
		t.Fatalf("drained worker exited %d", code)
	}
	startWorkerProc(t, append(args, "--worker-id", "second")...)
	got := wt.Results(t, js, len(ids), 60*time.Second)
	by := resultsByWorker(got)
	if by["first"] == 0 || by["second"] == 0 || by["first"]+by["second"] != 40 {
		t.Fatalf("results by worker: %v", by)
	}
}

// drainRun starts a worker of 2 running and 2 queued slots with 6 slow
// assignments, signals it once both running steps started, and returns
// the results and the assignments left in the stream.
func drainRun(t *testing.T, signals ...syscall.Signal) (map[string]worker.Result, []uint64) {
	srv := wt.StartServer(t, "")
	nc := wt.Connect(t, srv.ClientURL())
	js := wt.JetStream(t, nc)
	slow := newSlowServer(t)
	p := startWorkerProc(t, "--nats", srv.ClientURL(), "--worker-id", "d", "--concurrency", "2", "--queue-size", "2",
		"--heartbeat", "100ms", "--drain-timeout", "60s", "--allow-http", slow.grant())
	waitHeartbeat(t, nc, "d")
	publishHTTP(t, js, slow, "d-", 6, 3000)
	wt.Eventually(t, 30*time.Second, "two steps running", func() bool { return slow.totalHits() == 2 })
	for _, sig := range signals {
		if err := p.cmd.Process.Signal(sig); err != nil {
			t.Fatal(err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if code := p.wait(t); code != 0 {
		t.Fatalf("worker exited %d", code)
	}
	got := wt.Results(t, js, 2, 30*time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if n := wt.StreamMsgs(t, js, worker.StreamResult); n != 2 {
		t.Fatalf("%d results, want 2", n)
	}
	if slow.totalHits() != 2 {
		t.Fatalf("%d steps ran, want 2", slow.totalHits())
	}
	// What is left is there for the next worker at once: the two never
	// fetched, and the two fetched and handed back (a second delivery),
	// not held until the 30 s ack wait.
	c, err := js.Consumer(ctx, worker.StreamAssign, worker.Consumer)
	if err != nil {
		t.Fatal(err)
	}
	b, err := c.Fetch(4, jetstream.FetchMaxWait(10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	var deliveries []uint64
	for m := range b.Messages() {
		md, err := m.Metadata()
		if err != nil {
			t.Fatal(err)
		}
		deliveries = append(deliveries, md.NumDelivered)
	}
	slices.Sort(deliveries)
	return got, deliveries
}

// One SIGTERM: the running steps finish and publish their results; what
// was fetched and not started is handed back at once (not left pending
// until the ack wait), the rest stays in the stream.
func TestWorker_drain(t *testing.T) {
	got, deliveries := drainRun(t, syscall.SIGTERM)
	for id, r := range got {
		if r.Status != worker.StatusSuccess {
			t.Fatalf("%s: %+v", id, r)
		}
	}
	if !slices.Equal(deliveries, []uint64{1, 1, 2, 2}) {
		t.Fatalf("after the drain, the stream gave deliveries %v; want [1 1 2 2]", deliveries)
	}
}

// A second signal cancels the running steps; their cancelled results are
// published before the worker exits.
func TestWorker_drainSecondSignal(t *testing.T) {
	got, deliveries := drainRun(t, syscall.SIGTERM, syscall.SIGINT)
	for id, r := range got {
		if r.Status != worker.StatusCancelled {
			t.Fatalf("%s: %+v", id, r)
		}
	}
	if !slices.Equal(deliveries, []uint64{1, 1, 2, 2}) {
		t.Fatalf("after the drain, the stream gave deliveries %v; want [1 1 2 2]", deliveries)
	}
}

// submit --wait prints one result per line and exits 0; a bad line
// publishes nothing; --timeout exits 124.
func TestSubmit(t *testing.T) {
	srv := wt.StartServer(t, "")
	nc := wt.Connect(t, srv.ClientURL())
	js := wt.JetStream(t, nc)
	slow := newSlowServer(t)
	startWorkerProc(t, "--nats", srv.ClientURL(), "--worker-id", "s", "--heartbeat", "100ms", "--allow-http", slow.grant())
	waitHeartbeat(t, nc, "s")

	dir := t.TempDir()
	good := filepath.Join(dir, "good.jsonl")
	lines := fmt.Sprintf(`{"job":{"type":"http.request","url":"%s/?id=one"}}`+"\n\n"+
		`{"assignment_id":"two","tenant_id":"acme","job":{"type":"http.request","url":"%s/?id=two"}}`+"\n"+
		`{"job":{"type":"no.such.block"}}`+"\n", slow.URL, slow.URL)
	if err := os.WriteFile(good, []byte(lines), 0o644); err != nil {
		t.Fatal(err)
	}
	r := runSubmit("--nats", srv.ClientURL(), "--wait", "--timeout", "60s", good)
	if r.code != exitSuccess {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	outLines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if len(outLines) != 3 {
		t.Fatalf("want 3 result lines, got:\n%s", r.stdout)
	}
	statuses := map[worker.Status]int{}
	for _, l := range outLines {
		var res worker.Result
		if err := json.Unmarshal([]byte(l), &res); err != nil || res.AssignmentID == "" || res.RequestID == "" {
			t.Fatalf("line %q: %v", l, err)
		}
		if res.AssignmentID == "two" && res.TenantID != "acme" {
			t.Fatalf("two: %+v", res)
		}
		statuses[res.Status]++
	}
	if statuses[worker.StatusSuccess] != 2 || statuses[worker.StatusError] != 1 {
		t.Fatalf("statuses %v", statuses)
	}

	bad := filepath.Join(dir, "bad.jsonl")
	if err := os.WriteFile(bad, []byte(`{"job":{"type":"http.request"}}`+"\n"+`{"version":"7","job":{"type":"x"}}`+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	before := wt.StreamMsgs(t, js, worker.StreamResult)
	if r := runSubmit("--nats", srv.ClientURL(), bad); r.code != exitUsage || !strings.Contains(r.stderr, "line 2") {
		t.Fatalf("a bad line: exit %d: %s", r.code, r.stderr)
	}
	time.Sleep(200 * time.Millisecond)
	if n := wt.StreamMsgs(t, js, worker.StreamResult); n != before {
		t.Fatal("a file with a bad line was partly published")
	}

	// No worker on this server: the results never come.
	idle := wt.StartServer(t, "")
	if r := runSubmit("--nats", idle.ClientURL(), "--wait", "--timeout", "300ms", good); r.code != exitTimeout {
		t.Fatalf("exit %d, want 124: %s", r.code, r.stderr)
	}
}

// runSubmit runs `blockhost submit` in this process.
func runSubmit(args ...string) cliResult {
	var out, errb bytes.Buffer
	code := runMain(context.Background(), append([]string{"blockhost", "submit"}, args...), strings.NewReader(""), &out, &errb)
	return cliResult{code: code, stdout: out.String(), stderr: errb.String()}
}
