package wazero

import (
	"context"
	"testing"
	"time"

	"github.com/blockhost/blockhost/abi"
	"github.com/blockhost/blockhost/host/engine"
)

// benchABIModule serves ABI v1 to examples/hello with the least work:
// input {"name":"ana"}, output kept, everything else a success. It stands
// in for the host, which this package cannot import.
func benchABIModule(output *[]byte) engine.HostModule {
	input := []byte(`{"name":"ana"}`)
	hm := engine.HostModule{Name: abi.ImportModule}
	for _, fn := range abi.Functions() {
		name, sig := fn.Name, fn.Signature
		f := func(_ context.Context, _ engine.Memory, s []uint64) { s[0] = uint64(abi.ResultOK) }
		switch name {
		case abi.FuncInputLen:
			f = func(_ context.Context, m engine.Memory, s []uint64) {
				m.WriteUint32Le(uint32(s[0]), uint32(len(input)))
				s[0] = uint64(abi.ResultOK)
			}
		case abi.FuncInputRead:
			f = func(_ context.Context, m engine.Memory, s []uint64) {
				n := min(uint32(s[1]), uint32(len(input)))
				m.Write(uint32(s[0]), input[:n])
				m.WriteUint32Le(uint32(s[2]), n)
				s[0] = uint64(abi.ResultOK)
			}
		case abi.FuncOutputWrite:
			f = func(_ context.Context, m engine.Memory, s []uint64) {
				p, _ := m.Read(uint32(s[0]), uint32(s[1]))
				*output = append((*output)[:0], p...)
				s[0] = uint64(abi.ResultOK)
			}
		case abi.FuncDeadline:
			f = func(_ context.Context, m engine.Memory, s []uint64) {
				m.WriteUint64Le(uint32(s[0]), uint64(time.Minute))
				s[0] = uint64(abi.ResultOK)
			}
		}
		hm.Functions = append(hm.Functions, engine.HostFunction{Name: name, Signature: sig, Func: f})
	}
	return hm
}

// BenchmarkDataMerge runs examples/hello, a fresh instance per step, as
// Compile prepares it (data segments merged) and with entry checks only
// (as before the merge), alternating the two so that both see the same
// machine; it reports each per step and their ratio.
func BenchmarkDataMerge(b *testing.B) {
	ctx := context.Background()
	var output []byte
	eng := benchEngine(b, &output)
	e := eng
	wasm := goModule(b).wasm

	merged, err := e.Compile(ctx, wasm)
	if err != nil {
		b.Fatal(err)
	}
	defer merged.Close(ctx)
	checked, err := addInterruptChecks(wasm)
	if err != nil {
		b.Fatal(err)
	}
	cm, err := e.rt.CompileModule(ctx, checked)
	if err != nil {
		b.Fatal(err)
	}
	unmerged := &module{e: e, rt: e.rt, cm: cm, mem: newMemPool(nil)}
	defer unmerged.Close(ctx)

	cfg := engine.RunConfig{Entry: []string{"_start"}, Args: []string{"hello"}}
	run := func(m engine.Module) time.Duration {
		start := time.Now()
		res, err := m.Run(ctx, cfg)
		d := time.Since(start)
		if err != nil || res.ExitCode != 0 || len(output) == 0 {
			b.Fatalf("hello: %v, exit %d, output %q", err, res.ExitCode, output)
		}
		output = output[:0]
		return d
	}
	var tMerged, tUnmerged time.Duration
	n := 0
	for b.Loop() {
		if n%2 == 0 {
			tMerged += run(merged)
			tUnmerged += run(unmerged)
		} else {
			tUnmerged += run(unmerged)
			tMerged += run(merged)
		}
		n++
	}
	b.ReportMetric(float64(tMerged.Microseconds())/float64(n), "merged-µs/step")
	b.ReportMetric(float64(tUnmerged.Microseconds())/float64(n), "unmerged-µs/step")
	b.ReportMetric(float64(tMerged)/float64(tUnmerged), "merged/unmerged")
}

// benchEngine is an engine serving benchABIModule, closed when b ends.
func benchEngine(b *testing.B, output *[]byte) *Engine {
	ctx := context.Background()
	eng, err := New(ctx, engine.Config{HostModules: []engine.HostModule{benchABIModule(output)}})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { eng.Close(ctx) })
	return eng.(*Engine)
}
