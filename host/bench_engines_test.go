package host_test

// Engine benchmarks behind `make bench`: every engine side by side, each
// beside a raw embedding of the same engine. docs/engines.md explains the
// figures and records those measured on the reference machine.

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tetratelabs/wazero"

	"github.com/blockhost/blockhost/abi"
	"github.com/blockhost/blockhost/host"
	"github.com/blockhost/blockhost/host/engine"
	"github.com/blockhost/blockhost/internal/testwasm"
)

// rawEngine is the least code that runs a module on one engine without
// the host: the baseline each engine's host figures are divided by.
type rawEngine struct {
	// variants run hello in a fresh instance per step. The first is the
	// fair baseline: it pays for what the host needs to interrupt a guest.
	variants []rawVariant
	// compile compiles wasm on a new engine; with cacheDir, through the
	// engine's own disk cache, prepared by a first call.
	compile func(b *testing.B, wasm []byte, cacheDir string)
}

type rawVariant struct {
	name string
	// start prepares the raw host for wasm and returns one step.
	start func(b *testing.B, wasm []byte) func(b *testing.B, input []byte)
}

// rawEngines holds each engine's raw embedding; the wasmtime one is added
// by bench_engines_cgo_test.go when cgo is available.
var rawEngines = map[string]rawEngine{
	"wazero": {
		variants: []rawVariant{
			{"closeondone", func(b *testing.B, wasm []byte) func(*testing.B, []byte) {
				return newBenchRawHost(b, wasm, true).runHello
			}},
			{"plain", func(b *testing.B, wasm []byte) func(*testing.B, []byte) {
				return newBenchRawHost(b, wasm, false).runHello
			}},
		},
		compile: func(b *testing.B, wasm []byte, cacheDir string) {
			ctx := context.Background()
			rc := wazero.NewRuntimeConfig().WithCloseOnContextDone(true)
			if cacheDir != "" {
				cache, err := wazero.NewCompilationCacheWithDir(cacheDir)
				if err != nil {
					b.Fatal(err)
				}
				defer cache.Close(ctx)
				rc = rc.WithCompilationCache(cache)
			}
			rt := wazero.NewRuntimeWithConfig(ctx, rc)
			defer rt.Close(ctx)
			if _, err := rt.CompileModule(ctx, wasm); err != nil {
				b.Fatal(err)
			}
		},
	},
}

// benchEngines returns the engines this build can run, skipping b for the
// others.
func benchEngines(b *testing.B) []string {
	var names []string
	for _, name := range engine.Names() {
		rt, err := host.NewRuntime(context.Background(), host.NewRuntimeConfig().WithEngine(name))
		if errors.Is(err, engine.ErrUnavailable) {
			b.Logf("engine %s: %v", name, err)
			continue
		}
		if err != nil {
			b.Fatal(err)
		}
		rt.Close(context.Background())
		names = append(names, name)
	}
	return names
}

// benchLoadOn loads wasm into a runtime of its own on the named engine.
func benchLoadOn(b *testing.B, engineName, name string, wasm []byte) *host.Block {
	b.Helper()
	ctx := context.Background()
	rt, err := host.NewRuntime(ctx, host.NewRuntimeConfig().WithEngine(engineName))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { rt.Close(ctx) })
	blk, err := rt.Load(ctx, name, wasm)
	if err != nil {
		b.Fatal(err)
	}
	return blk
}

// BenchmarkEngineStep measures one step of examples/hello, a fresh
// instance each time, on every engine: built as a command, through the
// host (Block.Run) and through that engine's raw embedding; and built as
// `blockhost build` builds it (a reactor started from its snapshot after
// initialisation), through the host, a stream of steps of that one block
// as `run` and `batch` give it. The snapshot figure also reports the
// process's CPU per step, which includes what an engine does for a step
// after its result (the wasmtime engine deletes the store on another
// goroutine).
func BenchmarkEngineStep(b *testing.B) {
	wasm := testwasm.Go(b, "../examples/hello")
	reactor := testwasm.GoReactor(b, "../examples/hello")
	input := []byte(benchHelloInput)
	for _, name := range benchEngines(b) {
		b.Run(name+"/hello/host", func(b *testing.B) {
			blk := benchLoadOn(b, name, "hello", wasm)
			b.ReportAllocs()
			for b.Loop() {
				benchRunHello(b, blk, input)
			}
			benchStepsPerSecond(b)
		})
		b.Run(name+"/hello-snapshot/host", func(b *testing.B) {
			blk := benchLoadOn(b, name, "hello", reactor)
			if !blk.UsesSnapshot() {
				b.Fatal("the reactor does not start from a snapshot")
			}
			benchRunHello(b, blk, input) // the first step maps what later ones reuse
			b.ReportAllocs()
			cpu := benchProcessCPU(b)
			for b.Loop() {
				benchRunHello(b, blk, input)
			}
			b.ReportMetric(float64((benchProcessCPU(b)-cpu).Nanoseconds())/float64(b.N), "cpu-ns/step")
			benchStepsPerSecond(b)
		})
		for _, v := range rawEngines[name].variants {
			b.Run(name+"/hello/raw/"+v.name, func(b *testing.B) {
				step := v.start(b, wasm)
				b.ReportAllocs()
				for b.Loop() {
					step(b, input)
				}
				benchStepsPerSecond(b)
			})
		}
	}
}

// BenchmarkEngineHostVsRaw runs, for each engine, the host step and the
// raw steps in turn, rotating their order, so that they see the same
// machine state, and reports each per step and the ratios host/raw.
func BenchmarkEngineHostVsRaw(b *testing.B) {
	wasm := testwasm.Go(b, "../examples/hello")
	input := []byte(benchHelloInput)
	for _, name := range benchEngines(b) {
		b.Run(name, func(b *testing.B) {
			runs, variants := benchHostAndRaw(b, name, wasm, input)
			spent := make([]time.Duration, len(runs))
			turn := 0
			for b.Loop() {
				for k := range runs {
					i := (turn + k) % len(runs)
					start := time.Now()
					runs[i]()
					spent[i] += time.Since(start)
				}
				turn++
			}
			perStep := func(d time.Duration) float64 { return float64(d.Nanoseconds()) / float64(b.N) }
			b.ReportMetric(0, "ns/op")
			b.ReportMetric(perStep(spent[0]), "host-ns/step")
			for i, v := range variants {
				b.ReportMetric(perStep(spent[i+1]), "raw-"+v.name+"-ns/step")
				b.ReportMetric(float64(spent[0])/float64(spent[i+1]), "ratio-vs-"+v.name)
			}
		})
	}
}

// benchHostAndRaw returns one hello step on the host (first) and one on
// each raw variant of the engine, and the variants, for the host-vs-raw
// benchmarks.
func benchHostAndRaw(b *testing.B, name string, wasm, input []byte) ([]func(), []rawVariant) {
	blk := benchLoadOn(b, name, "hello", wasm)
	variants := rawEngines[name].variants
	runs := []func(){func() { benchRunHello(b, blk, input) }}
	for _, v := range variants {
		step := v.start(b, wasm)
		runs = append(runs, func() { step(b, input) })
	}
	return runs, variants
}

// benchCPUBlock is how many steps of one kind BenchmarkEngineHostVsRawCPU
// runs between two readings of the process's CPU time.
const benchCPUBlock = 25

// BenchmarkEngineHostVsRawCPU compares the same steps as
// BenchmarkEngineHostVsRaw by CPU time instead of wall time. The process's
// CPU time (getrusage) cannot be split between steps that alternate one by
// one — the wasmtime engine deletes a step's store on another goroutine
// while the next step runs — so an iteration runs benchCPUBlock steps of
// each kind in turn, the order rotating, and the CPU of a block is charged
// to its kind: at most one deferred deletion crosses into the next block.
// It reports CPU and wall time per step of each kind and the ratios
// host/raw by CPU.
func BenchmarkEngineHostVsRawCPU(b *testing.B) {
	wasm := testwasm.Go(b, "../examples/hello")
	input := []byte(benchHelloInput)
	for _, name := range benchEngines(b) {
		b.Run(name, func(b *testing.B) {
			runs, variants := benchHostAndRaw(b, name, wasm, input)
			for _, run := range runs {
				run() // warm every kind up before anything is measured
			}
			cpu := make([]time.Duration, len(runs))
			wall := make([]time.Duration, len(runs))
			steps := make([]int, len(runs))
			turn := 0
			for b.Loop() {
				for k := range runs {
					i := (turn + k) % len(runs)
					c0, w0 := benchProcessCPU(b), time.Now()
					for range benchCPUBlock {
						runs[i]()
					}
					wall[i] += time.Since(w0)
					cpu[i] += benchProcessCPU(b) - c0
					steps[i] += benchCPUBlock
				}
				turn++
			}
			perStep := func(d time.Duration, i int) float64 { return float64(d.Nanoseconds()) / float64(steps[i]) }
			b.ReportMetric(0, "ns/op")
			b.ReportMetric(perStep(cpu[0], 0), "host-cpu-ns/step")
			b.ReportMetric(perStep(wall[0], 0), "host-wall-ns/step")
			for i, v := range variants {
				b.ReportMetric(perStep(cpu[i+1], i+1), "raw-"+v.name+"-cpu-ns/step")
				b.ReportMetric(perStep(wall[i+1], i+1), "raw-"+v.name+"-wall-ns/step")
				b.ReportMetric(perStep(cpu[0], 0)/perStep(cpu[i+1], i+1), "cpu-ratio-vs-"+v.name)
			}
		})
	}
}

// BenchmarkEngineCompile measures loading examples/hello into a new
// runtime: cold, compiling it, and warm, from a disk cache a first load
// filled; each beside the engine's raw compile (cold) and the engine's own
// disk cache (warm). Each iteration creates its engine afresh, as a new
// process would.
func BenchmarkEngineCompile(b *testing.B) {
	wasm := testwasm.Go(b, "../examples/hello")
	ctx := context.Background()
	for _, name := range benchEngines(b) {
		load := func(b *testing.B, cacheDir string) {
			rt, err := host.NewRuntime(ctx, host.NewRuntimeConfig().WithEngine(name).WithCacheDir(cacheDir))
			if err != nil {
				b.Fatal(err)
			}
			defer rt.Close(ctx)
			if _, err := rt.Load(ctx, "hello", wasm); err != nil {
				b.Fatal(err)
			}
		}
		raw := rawEngines[name].compile
		b.Run(name+"/cold/host", func(b *testing.B) {
			for b.Loop() {
				load(b, "")
			}
			benchReportMillis(b)
		})
		b.Run(name+"/cold/raw", func(b *testing.B) {
			for b.Loop() {
				raw(b, wasm, "")
			}
			benchReportMillis(b)
		})
		b.Run(name+"/warm/host", func(b *testing.B) {
			dir := b.TempDir()
			load(b, dir)
			if benchCacheFiles(dir) == 0 {
				b.Fatal("the first load left the cache empty")
			}
			for b.Loop() {
				load(b, dir)
			}
			benchReportMillis(b)
		})
		b.Run(name+"/warm/raw", func(b *testing.B) {
			dir := b.TempDir()
			raw(b, wasm, dir)
			if benchCacheFiles(dir) == 0 {
				b.Fatal("the first compile left the cache empty")
			}
			for b.Loop() {
				raw(b, wasm, dir)
			}
			benchReportMillis(b)
		})
	}
}

func benchReportMillis(b *testing.B) {
	b.ReportMetric(float64(b.Elapsed())/float64(b.N)/float64(time.Millisecond), "ms/load")
}

// BenchmarkEngineInterrupt measures, on every engine, how late a step that
// never yields ends: the time from its deadline (start + timeout) to Run
// returning, over benchInterruptRuns steps of a WebAssembly-text loop and of
// the Go SDK's examples/loop, as p50, p99 and maximum. One iteration is the
// whole batch; `make bench` runs it once whatever BENCHTIME says, because a
// batch takes longer than BENCHTIME.
func BenchmarkEngineInterrupt(b *testing.B) {
	fixtures := []struct {
		name string
		wasm func(testing.TB) []byte
	}{
		{"loop-wat", func(t testing.TB) []byte { return testwasm.WAT(t, "testdata/loop.wat") }},
		{"loop-go", func(t testing.TB) []byte { return testwasm.Go(t, "../examples/loop") }},
	}
	for _, name := range benchEngines(b) {
		for _, f := range fixtures {
			b.Run(name+"/"+f.name, func(b *testing.B) {
				blk := benchLoadOn(b, name, f.name, f.wasm(b))
				step := host.Step{Input: []byte("spin"), Limits: host.Limits{Timeout: benchInterruptTimeout}}
				var late []time.Duration
				for b.Loop() {
					for range benchInterruptRuns {
						start := time.Now()
						res := blk.Run(context.Background(), step)
						late = append(late, time.Since(start)-benchInterruptTimeout)
						if res.Status != abi.StatusTimeout {
							b.Fatalf("status %q, want timeout (error %+v)", res.Status, res.Error)
						}
					}
				}
				slices.Sort(late)
				b.ReportMetric(0, "ns/op")
				b.ReportMetric(float64(len(late)), "runs")
				b.ReportMetric(benchMillis(benchPercentile(late, 50)), "p50-ms")
				b.ReportMetric(benchMillis(benchPercentile(late, 99)), "p99-ms")
				b.ReportMetric(benchMillis(late[len(late)-1]), "max-ms")
			})
		}
	}
}

// benchSleepSteps steps of examples/sleep run at once in
// BenchmarkEngineSleepTimeout, each with a timeout of benchSleepTimeout.
const (
	benchSleepSteps   = 200
	benchSleepTimeout = time.Second
)

// BenchmarkEngineSleepTimeout measures, on every engine, interruption
// under load: benchSleepSteps steps of examples/sleep (a WASI clock sleep
// of ten seconds) started at once on one runtime, each with a one-second
// timeout. It reports p50, p99 and maximum of how late each step ended
// after its deadline (start + timeout), and the CPU time the whole process
// spent per batch (getrusage, user + system), in seconds: a guest that is
// woken again and again after its deadline shows there even when it ends
// on time. The CPU figure ends when the runtime is closed, so that it
// includes work an engine finishes after the results (the wasmtime engine
// deletes stores after Run returns) and the runtime's closing. One iteration is the whole batch, on a
// runtime of its own, loaded and its garbage collected before the clock
// starts; `make bench` runs it once.
func BenchmarkEngineSleepTimeout(b *testing.B) {
	wasm := testwasm.Go(b, "../examples/sleep")
	ctx := context.Background()
	for _, name := range benchEngines(b) {
		b.Run(name, func(b *testing.B) {
			step := host.Step{Limits: host.Limits{Timeout: benchSleepTimeout}}
			var (
				late []time.Duration
				cpu  time.Duration
			)
			for b.Loop() {
				rt, err := host.NewRuntime(ctx, host.NewRuntimeConfig().WithEngine(name))
				if err != nil {
					b.Fatal(err)
				}
				b.Cleanup(func() { rt.Close(ctx) })
				blk, err := rt.Load(ctx, "sleep", wasm)
				if err != nil {
					b.Fatal(err)
				}
				lates := make([]time.Duration, benchSleepSteps)
				statuses := make([]abi.Status, benchSleepSteps)
				// Collect what compiling left, so that the batch's CPU is
				// its own and not the collection of Load's garbage.
				runtime.GC()
				before := benchProcessCPU(b)
				var wg sync.WaitGroup
				for i := range benchSleepSteps {
					wg.Go(func() {
						start := time.Now()
						statuses[i] = blk.Run(context.Background(), step).Status
						lates[i] = time.Since(start) - benchSleepTimeout
					})
				}
				wg.Wait()
				rt.Close(ctx)
				cpu += benchProcessCPU(b) - before
				for i, st := range statuses {
					if st != abi.StatusTimeout {
						b.Fatalf("step %d: status %q, want timeout", i, st)
					}
				}
				late = append(late, lates...)
			}
			slices.Sort(late)
			b.ReportMetric(0, "ns/op")
			b.ReportMetric(float64(len(late)), "runs")
			b.ReportMetric(benchMillis(benchPercentile(late, 50)), "p50-ms")
			b.ReportMetric(benchMillis(benchPercentile(late, 99)), "p99-ms")
			b.ReportMetric(benchMillis(late[len(late)-1]), "max-ms")
			b.ReportMetric(cpu.Seconds()/float64(b.N), "cpu-s/batch")
		})
	}
}

// benchProcessCPU is the CPU time, user and system, the process has
// used so far.
func benchProcessCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// benchCacheFiles counts the files under dir, to check that a warm run
// had something to be warm from.
func benchCacheFiles(dir string) int {
	n := 0
	filepath.WalkDir(dir, func(_ string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			n++
		}
		return nil
	})
	return n
}
