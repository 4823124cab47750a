package host_test

import (
	"context"
	"testing"
	"time"

	"github.com/blockhost/blockhost/host"
	"github.com/blockhost/blockhost/internal/testwasm"
)

// BenchmarkEngineSnapshot measures a fresh step of examples/hello on every
// engine three ways, in turn and in rotating order so that they see the
// same machine state: built as a command (go build, what the host ran
// before snapshots), as a reactor that initialises in every step
// (snapshots off), and as a reactor started from a snapshot taken after
// initialisation (blockhost build's default). It reports each per step and
// the ratios snapshot/command and snapshot/reactor.
func BenchmarkEngineSnapshot(b *testing.B) {
	command := testwasm.Go(b, "../examples/hello")
	reactor := testwasm.GoReactor(b, "../examples/hello")
	input := []byte(benchHelloInput)
	ctx := context.Background()
	for _, name := range benchEngines(b) {
		b.Run(name, func(b *testing.B) {
			load := func(wasm []byte, snapshots bool) *host.Block {
				rt, err := host.NewRuntime(ctx, host.NewRuntimeConfig().WithEngine(name).WithSnapshots(snapshots))
				if err != nil {
					b.Fatal(err)
				}
				b.Cleanup(func() { rt.Close(ctx) })
				blk, err := rt.Load(ctx, "hello", wasm)
				if err != nil {
					b.Fatal(err)
				}
				if blk.UsesSnapshot() != snapshots {
					b.Fatalf("starts from a snapshot: %v, want %v", blk.UsesSnapshot(), snapshots)
				}
				return blk
			}
			blocks := []*host.Block{load(command, false), load(reactor, false), load(reactor, true)}
			spent := make([]time.Duration, len(blocks))
			turn := 0
			for b.Loop() {
				for k := range blocks {
					i := (turn + k) % len(blocks)
					start := time.Now()
					benchRunHello(b, blocks[i], input)
					spent[i] += time.Since(start)
				}
				turn++
			}
			perStep := func(d time.Duration) float64 { return float64(d.Nanoseconds()) / float64(b.N) }
			b.ReportMetric(0, "ns/op")
			b.ReportMetric(perStep(spent[0]), "command-ns/step")
			b.ReportMetric(perStep(spent[1]), "reactor-ns/step")
			b.ReportMetric(perStep(spent[2]), "snapshot-ns/step")
			b.ReportMetric(float64(spent[2])/float64(spent[0]), "ratio-snapshot-vs-command")
			b.ReportMetric(float64(spent[2])/float64(spent[1]), "ratio-snapshot-vs-reactor")
		})
	}
}
