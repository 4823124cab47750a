package worker_test

// The end-to-end benchmark behind `make bench`: an assignment published
// on the embedded server, taken by a worker, run by the executor on an
// engine, its result stored and received. docs/worker.md records the
// figures measured on the reference machine.

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/blockhost/blockhost/host"
	"github.com/blockhost/blockhost/host/engine"
	"github.com/blockhost/blockhost/host/executor"
	"github.com/blockhost/blockhost/host/worker"
	wt "github.com/blockhost/blockhost/host/worker/workertest"
	"github.com/blockhost/blockhost/internal/testwasm"
)

// benchWindow bounds the assignments published and not yet answered, so
// that latency is measured with every worker busy but not behind an
// ever-growing queue.
const benchWindow = 128

// BenchmarkEndToEnd reports steps/s and the p50 and p99 latency from
// publishing an assignment to receiving its result, for a tiny WAT block
// and examples/hello on each engine, with 1 and 2 workers (in this
// process, each with its own connection, sharing one embedded server).
func BenchmarkEndToEnd(b *testing.B) {
	blocks := []struct {
		name  string
		wasm  []byte
		input map[string]any
	}{
		{"tiny", testwasm.WAT(b, "testdata/tiny.wat"), nil},
		{"hello", testwasm.Go(b, "../../examples/hello"), map[string]any{"name": "ana"}},
	}
	for _, eng := range engine.Names() {
		for _, blk := range blocks {
			for _, workers := range []int{1, 2} {
				b.Run(fmt.Sprintf("%s/%s/workers=%d", eng, blk.name, workers), func(b *testing.B) {
					benchEndToEnd(b, eng, blk.wasm, blk.input, workers)
				})
			}
		}
	}
}

func benchEndToEnd(b *testing.B, eng string, wasm []byte, input map[string]any, workers int) {
	srv := wt.StartServer(b, "")
	ctx := context.Background()
	rt, err := host.NewRuntime(ctx, host.NewRuntimeConfig().WithEngine(eng))
	if err != nil {
		b.Skipf("engine %s: %v", eng, err)
	}
	defer rt.Close(ctx)
	blk, err := rt.Load(ctx, "block", wasm)
	if err != nil {
		b.Fatal(err)
	}
	cat := worker.Catalog{}.With("block", worker.Block{Runner: blk})
	for i := range workers {
		nc, err := nats.Connect(srv.ClientURL())
		if err != nil {
			b.Fatal(err)
		}
		defer nc.Close()
		e, err := executor.New(executor.NewConfig().
			WithPool(executor.DefaultPool, executor.PoolConfig{Concurrency: 16, QueueSize: 48}).
			WithBreaker(executor.BreakerConfig{Disabled: true}).WithRetryBudget(executor.BudgetConfig{Disabled: true}))
		if err != nil {
			b.Fatal(err)
		}
		defer e.Close(ctx)
		w, err := worker.New(nc, e, cat, worker.NewConfig().WithID("bench-"+strconv.Itoa(i)))
		if err != nil {
			b.Fatal(err)
		}
		if err := w.Start(ctx); err != nil {
			b.Fatal(err)
		}
		defer w.Shutdown(ctx)
	}

	// The client, like a router, over TCP.
	nc, err := nats.Connect(srv.ClientURL())
	if err != nil {
		b.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(benchWindow))
	if err != nil {
		b.Fatal(err)
	}
	var mu sync.Mutex
	sent := map[string]time.Time{}
	var latencies []time.Duration
	window := make(chan struct{}, benchWindow)
	done := make(chan struct{}, 1)
	want := 0
	sub, err := nc.Subscribe(worker.SubjectResult, func(m *nats.Msg) {
		var r struct {
			AssignmentID string        `json:"assignment_id"`
			Status       worker.Status `json:"status"`
		}
		if err := json.Unmarshal(m.Data, &r); err != nil || r.Status != worker.StatusSuccess {
			b.Errorf("result %s", m.Data)
		}
		now := time.Now()
		mu.Lock()
		t0, ok := sent[r.AssignmentID]
		if ok {
			delete(sent, r.AssignmentID)
			latencies = append(latencies, now.Sub(t0))
		}
		n := len(latencies)
		mu.Unlock()
		if ok {
			<-window
			if n == want {
				done <- struct{}{}
			}
		}
	})
	if err != nil {
		b.Fatal(err)
	}
	defer sub.Unsubscribe()
	if err := nc.Flush(); err != nil {
		b.Fatal(err)
	}
	run := func(prefix string, n int) {
		mu.Lock()
		latencies, want = latencies[:0], n
		mu.Unlock()
		for i := range n {
			window <- struct{}{}
			id := prefix + strconv.Itoa(i)
			body := wt.Assignment(id, "block", input)
			mu.Lock()
			sent[id] = time.Now()
			mu.Unlock()
			if _, err := js.PublishAsync(worker.SubjectAssign, body, jetstream.WithMsgID(id)); err != nil {
				b.Fatal(err)
			}
		}
		select {
		case <-done:
		case <-time.After(5 * time.Minute):
			b.Fatal("results did not arrive")
		}
	}
	run("warm-", 200) // compile caches, connections, stream files
	cpu0 := cpuTime()
	b.ResetTimer()
	run("a-", b.N)
	b.StopTimer()
	cpu := cpuTime() - cpu0
	mu.Lock()
	slices.Sort(latencies)
	p50, p99 := latencies[len(latencies)*50/100], latencies[min(len(latencies)-1, len(latencies)*99/100)]
	mu.Unlock()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "steps/s")
	b.ReportMetric(float64(p50.Microseconds())/1000, "p50_ms")
	b.ReportMetric(float64(p99.Microseconds())/1000, "p99_ms")
	// The CPU time of the whole process (server, workers, client) per
	// step: what the machine spends, whatever else shares it.
	b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu_us/step")
	b.ReportMetric(0, "ns/op")
}

// cpuTime is the user and system CPU time this process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
