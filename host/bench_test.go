package host_test

// Benchmarks behind `make bench`; docs/benchmarks.md explains each figure
// and records the numbers measured on the reference machine.

import (
	"context"
	"crypto/rand"
	"fmt"
	"math"
	"slices"
	"testing"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"

	"github.com/blockhost/blockhost/abi"
	"github.com/blockhost/blockhost/host"
	"github.com/blockhost/blockhost/internal/testwasm"
)

// The step every latency benchmark runs: examples/hello greeting ana.
const (
	benchHelloInput  = `{"name":"ana"}`
	benchHelloOutput = `{"greeting":"hello, ana"}`
)

// BenchmarkStep measures one step of examples/hello, a fresh instance each
// time, through the host (Block.Run) and through the least code that runs
// the same module bytes on wazero directly (raw/...).
func BenchmarkStep(b *testing.B) {
	wasm := testwasm.Go(b, "../examples/hello")
	input := []byte(benchHelloInput)

	b.Run("hello/host", func(b *testing.B) {
		blk := benchLoad(b, "hello", wasm)
		b.ReportAllocs()
		for b.Loop() {
			benchRunHello(b, blk, input)
		}
		benchStepsPerSecond(b)
	})
	for _, v := range benchRawVariants {
		b.Run("hello/raw/"+v.name, func(b *testing.B) {
			raw := newBenchRawHost(b, wasm, v.closeOnDone)
			b.ReportAllocs()
			for b.Loop() {
				raw.runHello(b, input)
			}
			benchStepsPerSecond(b)
		})
	}
}

// BenchmarkHostVsRaw runs the host step and both raw steps of
// BenchmarkStep in turn, rotating their order, so that all three see the
// same machine state (caches, GC, other load), and reports the time of each
// per step and the ratios host/raw: "ratio" against raw with close-on-done,
// "ratio-vs-plain" against raw without. ns/op is hidden: it would be the
// sum of three different steps.
func BenchmarkHostVsRaw(b *testing.B) {
	wasm := testwasm.Go(b, "../examples/hello")
	input := []byte(benchHelloInput)
	blk := benchLoad(b, "hello", wasm)
	raws := make([]*benchRawHost, len(benchRawVariants))
	for i, v := range benchRawVariants {
		raws[i] = newBenchRawHost(b, wasm, v.closeOnDone)
	}
	runs := []func(){func() { benchRunHello(b, blk, input) }}
	for _, r := range raws {
		runs = append(runs, func() { r.runHello(b, input) })
	}

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
	for i, v := range benchRawVariants {
		b.ReportMetric(perStep(spent[i+1]), "raw-"+v.name+"-ns/step")
		// The fair comparison, close-on-done, is the plain "ratio".
		unit := "ratio"
		if !v.closeOnDone {
			unit = "ratio-vs-" + v.name
		}
		b.ReportMetric(float64(spent[0])/float64(spent[i+1]), unit)
	}
}

// benchInterruptTimeout is the step timeout of BenchmarkInterrupt, and
// benchInterruptRuns the number of steps one benchmark iteration runs:
// enough for a p99 that is not simply the maximum. `make bench` runs it
// with -benchtime=1x.
const (
	benchInterruptTimeout = 20 * time.Millisecond
	benchInterruptRuns    = 120
)

// BenchmarkInterrupt measures how late a step that never yields ends: the
// time from its deadline (start + timeout) to Run returning, for a
// WebAssembly-text loop and for the Go SDK's examples/loop. It reports the
// 50th and 99th percentile and the maximum, in milliseconds, over all runs.
func BenchmarkInterrupt(b *testing.B) {
	fixtures := []struct {
		name string
		wasm func(testing.TB) []byte
	}{
		{"loop-wat", func(t testing.TB) []byte { return testwasm.WAT(t, "testdata/loop.wat") }},
		{"loop-go", func(t testing.TB) []byte { return testwasm.Go(t, "../examples/loop") }},
	}
	for _, f := range fixtures {
		b.Run(f.name, func(b *testing.B) {
			blk := benchLoad(b, f.name, f.wasm(b))
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

// benchLoad loads wasm into a runtime of its own with the default
// configuration, closed when b ends.
func benchLoad(b *testing.B, name string, wasm []byte) *host.Block {
	b.Helper()
	ctx := context.Background()
	rt, err := host.NewRuntime(ctx, host.NewRuntimeConfig())
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

func benchRunHello(b *testing.B, blk *host.Block, input []byte) {
	res := blk.Run(context.Background(), host.Step{Input: input})
	if res.Status != abi.StatusSuccess || string(res.Output) != benchHelloOutput {
		b.Fatalf("host step: status %q, output %s, error %+v", res.Status, res.Output, res.Error)
	}
}

// benchRawVariants are the two ways of running wazero directly.
// closeOnDone is the mode the host must use to interrupt guests (it compiles
// a check into every loop header and watches the context from a goroutine
// during every call); plain is wazero at its fastest, with no way to stop a
// guest.
var benchRawVariants = []struct {
	name        string
	closeOnDone bool
}{
	{"closeondone", true},
	{"plain", false},
}

// benchRawHost is the least a wazero embedding needs to run an ABI block: WASI,
// and a "blockhost" host module whose functions do their job with no
// accounting, limits, logging or step state. It runs the module bytes as
// given, without the host's entry-check instrumentation.
type benchRawHost struct {
	rt          wazero.Runtime
	cm          wazero.CompiledModule
	mc          wazero.ModuleConfig
	closeOnDone bool

	// The current step's input and output; one step runs at a time.
	input, output []byte
}

func newBenchRawHost(b *testing.B, wasm []byte, closeOnDone bool) *benchRawHost {
	b.Helper()
	ctx := context.Background()
	rt := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfig().WithCloseOnContextDone(closeOnDone))
	b.Cleanup(func() { rt.Close(ctx) })
	wasi_snapshot_preview1.MustInstantiate(ctx, rt)

	r := &benchRawHost{rt: rt, closeOnDone: closeOnDone}
	hm := rt.NewHostModuleBuilder(abi.ImportModule)
	export := func(name string, f api.GoModuleFunc) {
		sig, _ := abi.LookupFunction(name)
		hm.NewFunctionBuilder().
			WithGoModuleFunction(f, benchValueTypes(sig.Params), benchValueTypes(sig.Results)).
			Export(name)
	}
	export(abi.FuncInputLen, func(_ context.Context, m api.Module, s []uint64) {
		m.Memory().WriteUint32Le(uint32(s[0]), uint32(len(r.input)))
		s[0] = uint64(abi.ResultOK)
	})
	export(abi.FuncInputRead, func(_ context.Context, m api.Module, s []uint64) {
		n := min(uint32(s[1]), uint32(len(r.input)))
		m.Memory().Write(uint32(s[0]), r.input[:n])
		m.Memory().WriteUint32Le(uint32(s[2]), n)
		s[0] = uint64(abi.ResultOK)
	})
	export(abi.FuncOutputWrite, func(_ context.Context, m api.Module, s []uint64) {
		p, _ := m.Memory().Read(uint32(s[0]), uint32(s[1]))
		r.output = append(r.output, p...)
		s[0] = uint64(abi.ResultOK)
	})
	// The guest is given the same deadline as under the host, so that it
	// does the same work (the SDK makes a deadline context from it).
	export(abi.FuncDeadline, func(ctx context.Context, m api.Module, s []uint64) {
		left := host.DefaultLimits.Timeout
		if dl, ok := ctx.Deadline(); ok {
			left = time.Until(dl)
		}
		m.Memory().WriteUint64Le(uint32(s[0]), uint64(left))
		s[0] = uint64(abi.ResultOK)
	})
	for _, name := range []string{abi.FuncErrorSet, abi.FuncLog, abi.FuncCheck} {
		export(name, func(_ context.Context, _ api.Module, s []uint64) { s[0] = uint64(abi.ResultOK) })
	}
	if _, err := hm.Instantiate(ctx); err != nil {
		b.Fatal(err)
	}

	cm, err := rt.CompileModule(ctx, wasm)
	if err != nil {
		b.Fatal(err)
	}
	r.cm = cm
	// What the guest can observe is what the host gives it: real clocks, the
	// system's random source, argv of the program name. The default start
	// function, _start, runs during instantiation.
	r.mc = wazero.NewModuleConfig().
		WithName("").
		WithArgs("hello").
		WithSysWalltime().
		WithSysNanotime().
		WithRandSource(rand.Reader)
	return r
}

// runHello runs one step in a fresh instance. With close-on-done the step
// gets a timeout context like a host step, since a deadline is what that
// mode exists to enforce.
func (r *benchRawHost) runHello(b *testing.B, input []byte) {
	ctx := context.Background()
	if r.closeOnDone {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, host.DefaultLimits.Timeout)
		defer cancel()
	}
	r.input, r.output = input, r.output[:0]
	mod, err := r.rt.InstantiateModule(ctx, r.cm, r.mc)
	if err != nil {
		b.Fatalf("raw step: %v", err)
	}
	mod.Close(ctx)
	if string(r.output) != benchHelloOutput {
		b.Fatalf("raw step: output %q, want %q", r.output, benchHelloOutput)
	}
}

func benchValueTypes(ts []abi.ValueType) []api.ValueType {
	out := make([]api.ValueType, len(ts))
	for i, t := range ts {
		out[i] = api.ValueType(t)
	}
	return out
}

func benchStepsPerSecond(b *testing.B) {
	if s := b.Elapsed().Seconds(); s > 0 {
		b.ReportMetric(float64(b.N)/s, "steps/s")
	}
}

// benchPercentile returns the p-th percentile of sorted by the nearest-rank
// method.
func benchPercentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		panic(fmt.Sprintf("percentile %v of no samples", p))
	}
	rank := int(math.Ceil(p / 100 * float64(len(sorted))))
	return sorted[max(rank, 1)-1]
}

func benchMillis(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
