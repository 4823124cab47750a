package worker_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/blockhost/blockhost/abi"
	"github.com/blockhost/blockhost/host"
	"github.com/blockhost/blockhost/host/executor"
	"github.com/blockhost/blockhost/host/worker"
)

// startServer starts an embedded server on a free loopback port with its
// store in a temporary directory, stopped at the end of the test.
func startServer(t testing.TB, store string) *worker.Server {
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

func connect(t testing.TB, urls string) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(urls, nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// blocks are the test's built-in blocks:
//
//	echo   returns its input
//	sleep  sleeps {"ms": N} milliseconds, or until cancelled
//	fail   fails with network_error, retryable
type testBlocks struct {
	rt *host.Runtime
	mu sync.Mutex
	// runs counts the runs of each assignment (the step id).
	runs map[string]int
}

func newRuntime(t testing.TB) *host.Runtime {
	t.Helper()
	rt, err := host.NewRuntime(context.Background(), host.NewRuntimeConfig())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rt.Close(context.Background()) })
	return rt
}

func catalog(t testing.TB) (worker.Catalog, *testBlocks) {
	t.Helper()
	tb := &testBlocks{rt: newRuntime(t), runs: map[string]int{}}
	count := func(id string) {
		tb.mu.Lock()
		tb.runs[id]++
		tb.mu.Unlock()
	}
	c := worker.Catalog{}.
		With("echo", worker.Block{Runner: tb.rt.Native("echo", func(_ context.Context, call *host.Call) ([]byte, error) {
			count(call.Step.ID)
			return call.Step.Input, nil
		})}).
		With("sleep", worker.Block{Runner: tb.rt.Native("sleep", func(ctx context.Context, call *host.Call) ([]byte, error) {
			count(call.Step.ID)
			var in struct{ MS int }
			_ = json.Unmarshal(call.Step.Input, &in)
			select {
			case <-time.After(time.Duration(in.MS) * time.Millisecond):
				return []byte(`{"slept":true}`), nil
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		})}).
		With("fail", worker.Block{Runner: tb.rt.Native("fail", func(_ context.Context, call *host.Call) ([]byte, error) {
			count(call.Step.ID)
			return nil, abi.NewError(abi.CodeNetworkError, abi.ClassRetryable, "connection refused")
		}), Retry: executor.RetryPolicy{Initial: time.Millisecond, MaxInterval: time.Millisecond}})
	return c, tb
}

func (tb *testBlocks) runsOf(id string) int {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	return tb.runs[id]
}

func newExecutor(t testing.TB, concurrency, queue int) *executor.Executor {
	t.Helper()
	e, err := executor.New(executor.NewConfig().
		WithPool(executor.DefaultPool, executor.PoolConfig{Concurrency: concurrency, QueueSize: queue}).
		WithRetryBudget(executor.BudgetConfig{Disabled: true}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close(context.Background()) })
	return e
}

// startWorker starts a worker on nc, shut down at the end of the test.
func startWorker(t testing.TB, nc *nats.Conn, e *executor.Executor, b worker.Blocks, cfg worker.Config) *worker.Worker {
	t.Helper()
	w, err := worker.New(nc, e, b, cfg.WithFetchWait(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := w.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = w.Shutdown(ctx)
	})
	return w
}

func assignment(id, jobType string, fields map[string]any) []byte {
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

func jsOf(t testing.TB, nc *nats.Conn) jetstream.JetStream {
	t.Helper()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return js
}

// publish publishes n assignments of jobType with ids prefix-0..n-1.
func publish(t testing.TB, js jetstream.JetStream, prefix string, n int, jobType string, fields map[string]any) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	ids := make([]string, n)
	futures := make([]jetstream.PubAckFuture, 0, n)
	for i := range n {
		ids[i] = prefix + strconv.Itoa(i)
		f, err := js.PublishAsync(worker.SubjectAssign, assignment(ids[i], jobType, fields), jetstream.WithMsgID(ids[i]))
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

// results reads the results stream from its start until it holds want
// distinct assignment ids or the hang-catcher passes; it fails the test
// on a second result for one id.
func results(t testing.TB, js jetstream.JetStream, want int, within time.Duration) map[string]worker.Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	var cons jetstream.Consumer
	var err error
	for {
		cons, err = js.OrderedConsumer(ctx, worker.StreamResult, jetstream.OrderedConsumerConfig{})
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

// streamMsgs is how many messages a stream holds.
func streamMsgs(t testing.TB, js jetstream.JetStream, name string) uint64 {
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

func eventually(t testing.TB, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %s: %s", within, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

var _ = fmt.Sprint
