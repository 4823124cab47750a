// Package workertest holds the helpers that the worker's tests and the
// CLI's share: an embedded server in a temporary directory, publishing
// assignments and reading the results stream.
package workertest

import (
	"context"
	"encoding/json"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/blockhost/blockhost/host/worker"
)

// StartServer starts an embedded server on a free loopback port with its
// store in a temporary directory, stopped at the end of the test.
func StartServer(t testing.TB, store string) *worker.Server {
	t.Helper()
	if store == "" {
		store = t.TempDir()
	}
	s, err := worker.StartServer(worker.ServerConfig{StoreDir: store, Listen: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Shutdown)
	return s
}

func Connect(t testing.TB, urls string) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(urls, nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

func Assignment(id, jobType string, fields map[string]any) []byte {
	job := map[string]any{"type": jobType}
	for k, v := range fields {
		job[k] = v
	}
	b, _ := json.Marshal(map[string]any{
		"version": "1", "assignment_id": id, "request_id": "req-" + id, "tenant_id": "t1",
		"trace_id": "tr-" + id, "run_id": "run-1", "executor": map[string]any{"provider_id": "blockhost"},
		"job": job,
	})
	return b
}

func JetStream(t testing.TB, nc *nats.Conn) jetstream.JetStream {
	t.Helper()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return js
}

// Publish publishes n assignments of jobType with ids prefix-0..n-1.
func Publish(t testing.TB, js jetstream.JetStream, prefix string, n int, jobType string, fields map[string]any) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	ids := make([]string, n)
	futures := make([]jetstream.PubAckFuture, 0, n)
	for i := range n {
		ids[i] = prefix + strconv.Itoa(i)
		f, err := js.PublishAsync(worker.SubjectAssign, Assignment(ids[i], jobType, fields), jetstream.WithMsgID(ids[i]))
		if err != nil {
			t.Fatal(err)
		}
		futures = append(futures, f)
	}
	for _, f := range futures {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			t.Fatalf("publishing an assignment: %v", err)
		case <-ctx.Done():
			t.Fatal("publishing assignments timed out")
		}
	}
	return ids
}

// Results reads the results stream from its start until it holds want
// distinct assignment ids or the hang-catcher passes; it fails the test
// on a second result for one id.
func Results(t testing.TB, js jetstream.JetStream, want int, within time.Duration) map[string]worker.Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	var cons jetstream.Consumer
	var err error
	for {
		// Each attempt gets a few seconds: in a cluster that has just
		// lost a node, a request can wait for a peer that is gone, and
		// one attempt given the whole window never tries again.
		actx, acancel := context.WithTimeout(ctx, 5*time.Second)
		cons, err = js.OrderedConsumer(actx, worker.StreamResult, jetstream.OrderedConsumerConfig{})
		acancel()
		if err == nil || ctx.Err() != nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("results consumer: %v", err)
	}
	got := map[string]worker.Result{}
	it, err := cons.Messages()
	if err != nil {
		t.Fatal(err)
	}
	defer it.Stop()
	done := make(chan struct{})
	go func() {
		<-ctx.Done()
		it.Stop()
		close(done)
	}()
	defer func() { cancel(); <-done }()
	for len(got) < want {
		m, err := it.Next()
		if err != nil {
			t.Fatalf("after %d of %d results: %v", len(got), want, err)
		}
		var r worker.Result
		if err := json.Unmarshal(m.Data(), &r); err != nil {
			t.Fatalf("result %s: %v", m.Data(), err)
		}
		if _, dup := got[r.AssignmentID]; dup {
			t.Fatalf("second result in the stream for %s", r.AssignmentID)
		}
		got[r.AssignmentID] = r
	}
	return got
}

// StreamMsgs is how many messages a stream holds.
func StreamMsgs(t testing.TB, js jetstream.JetStream, name string) uint64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Msgs
}

func Eventually(t testing.TB, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %s: %s", within, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// FreeAddr returns a loopback host:port free a moment ago, for a server
// that must know its port before it starts.
func FreeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}
