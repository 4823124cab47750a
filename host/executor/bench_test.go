package executor_test

// Benchmarks behind `make bench` for the executor; docs/failure-model.md
// quotes the figures.

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/blockhost/blockhost/abi"
	"github.com/blockhost/blockhost/host"
	"github.com/blockhost/blockhost/host/engine"
	"github.com/blockhost/blockhost/host/executor"
	"github.com/blockhost/blockhost/internal/testwasm"
)

func benchExecutor(b *testing.B, concurrency, queue int) *executor.Executor {
	b.Helper()
	e, err := executor.New(executor.NewConfig().
		WithPool(executor.DefaultPool, executor.PoolConfig{Concurrency: concurrency, QueueSize: queue}).
		WithRegisterer(prometheus.NewRegistry()))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { e.Close(context.Background()) })
	return e
}

// BenchmarkOverhead measures what the executor adds to one step — queue
// admission, the retry policy, load accounting, breaker and budget of a
// dependency, metrics, the step's goroutine — for a built-in block that
// does nothing: "direct" calls the block, "executor" runs it through
// Executor.Run, and overhead-ns/step is their difference, measured in
// turns on the same machine state.
func BenchmarkOverhead(b *testing.B) {
	ctx := context.Background()
	rt, err := host.NewRuntime(ctx, host.NewRuntimeConfig())
	if err != nil {
		b.Fatal(err)
	}
	defer rt.Close(ctx)
	noop := rt.Native("noop", func(context.Context, *host.Call) ([]byte, error) { return nil, nil })
	e := benchExecutor(b, 1, 16)
	step := host.Step{ID: "bench", Limits: host.Limits{Timeout: time.Minute}}
	req := executor.Request{Runner: noop, Step: step, Dependency: "noop:0"}

	var direct, through time.Duration
	b.ReportAllocs()
	for b.Loop() {
		start := time.Now()
		if res := noop.Run(ctx, step); res.Status != abi.StatusSuccess {
			b.Fatal(res.Error)
		}
		mid := time.Now()
		if res := e.Run(ctx, req); res.Status != abi.StatusSuccess {
			b.Fatal(res.Error)
		}
		direct += mid.Sub(start)
		through += time.Since(mid)
	}
	n := float64(b.N)
	b.ReportMetric(float64(direct.Nanoseconds())/n, "direct-ns/step")
	b.ReportMetric(float64(through.Nanoseconds())/n, "executor-ns/step")
	b.ReportMetric(float64((through-direct).Nanoseconds())/n, "overhead-ns/step")
	b.ReportMetric(0, "ns/op")
}

// BenchmarkBatchHello runs examples/hello through the executor at
// concurrency 1, 2 and 4 on every engine, keeping the queue full as
// `blockhost batch` does, and reports steps/s. hello is built as
// `blockhost build` builds it: a reactor, every step started from the
// snapshot taken after initialisation.
func BenchmarkBatchHello(b *testing.B) {
	ctx := context.Background()
	wasm := testwasm.GoReactor(b, "../../examples/hello")
	input := []byte(`{"name":"ana"}`)
	for _, name := range engine.Names() {
		b.Run(name, func(b *testing.B) {
			rt, err := host.NewRuntime(ctx, host.NewRuntimeConfig().WithEngine(name))
			if errors.Is(err, engine.ErrUnavailable) {
				b.Skipf("engine %s: %v", name, err)
			}
			if err != nil {
				b.Fatal(err)
			}
			defer rt.Close(ctx)
			blk, err := rt.Load(ctx, "hello", wasm)
			if err != nil {
				b.Fatal(err)
			}
			if !blk.UsesSnapshot() {
				b.Fatalf("%s: hello does not start from a snapshot", name)
			}
			for _, conc := range []int{1, 2, 4} {
				b.Run(fmt.Sprintf("concurrency=%d", conc), func(b *testing.B) {
					e := benchExecutor(b, conc, 4*conc)
					slots := make(chan struct{}, 5*conc)
					results := make(chan *abi.StepResult, 5*conc)
					start := time.Now()
					b.ResetTimer()
					go func() {
						for range b.N {
							slots <- struct{}{}
							t := e.Submit(ctx, executor.Request{Runner: blk, Step: host.Step{Input: input}})
							go func() { results <- t.Result(); <-slots }()
						}
					}()
					for range b.N {
						if res := <-results; res.Status != abi.StatusSuccess {
							b.Fatal(res.Error)
						}
					}
					b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "steps/s")
				})
			}
		})
	}
}
