//go:build unix

package wazero

import (
	"context"
	"syscall"
	"testing"
	"time"

	"github.com/blockhost/blockhost/host/engine"
)

// BenchmarkMemory runs examples/hello, a fresh instance per step, with
// memories in mapped ranges reset between runs (memory.go) and in Go
// slices holding a copy of the image, alternating the two so that both
// see the same machine; it reports each per step, in wall-clock and in
// process CPU time, and the ratios mapped/slices.
func BenchmarkMemory(b *testing.B) {
	ctx := context.Background()
	var output []byte
	eng := benchEngine(b, &output)
	m, err := eng.Compile(ctx, goModule(b).wasm)
	if err != nil {
		b.Fatal(err)
	}
	defer m.Close(ctx)
	defer func(old bool) { mapMemories = old }(mapMemories)

	cfg := engine.RunConfig{Entry: []string{"_start"}, Args: []string{"hello"}}
	var wall, cpu [2]time.Duration
	n := 0
	for b.Loop() {
		for k := range 2 {
			i := (n + k) % 2
			mapMemories = i == 0
			c, start := benchCPU(b), time.Now()
			res, err := m.Run(ctx, cfg)
			wall[i] += time.Since(start)
			cpu[i] += benchCPU(b) - c
			if err != nil || res.ExitCode != 0 || len(output) == 0 {
				b.Fatalf("hello: %v, exit %d, output %q", err, res.ExitCode, output)
			}
			output = output[:0]
		}
		n++
	}
	per := func(d time.Duration) float64 { return float64(d.Microseconds()) / float64(n) }
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(per(wall[0]), "mapped-µs/step")
	b.ReportMetric(per(wall[1]), "slices-µs/step")
	b.ReportMetric(per(cpu[0]), "mapped-cpu-µs/step")
	b.ReportMetric(per(cpu[1]), "slices-cpu-µs/step")
	b.ReportMetric(float64(wall[0])/float64(wall[1]), "mapped/slices")
	b.ReportMetric(float64(cpu[0])/float64(cpu[1]), "mapped/slices-cpu")
}

// benchCPU is the CPU time, user and system, the process has used so far.
func benchCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
