package extismcompat

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	extism "github.com/extism/go-sdk"
	"github.com/tetratelabs/wazero"

	"github.com/blockhost/blockhost/abi"
	"github.com/blockhost/blockhost/host"
	"github.com/blockhost/blockhost/internal/testwasm"
)

// benchGuest is one guest of the comparison: a module and call on
// blockhost and, unless extism is set, the same module and call on Extism.
type benchGuest struct {
	name   string
	wasm   func(b *testing.B) []byte
	fn     string
	input  []byte
	output string
	// snapshot is whether blockhost must start the guest's steps from a
	// snapshot (an SDK reactor).
	snapshot bool
	// extism, when set, is what Extism runs instead: the same work as
	// the plugin Extism's own Go kit builds it.
	extism *benchGuest
}

// countVowelsStd is the go-sdk's count_vowels_std.wasm: standard Go
// (GOOS=wasip1, a command), the Go runtime's start-up in every call.
func countVowelsStd() *benchGuest {
	return &benchGuest{
		name: "go", fn: "_start", input: []byte("ben"),
		output: `{"count": 1, "config": "<unset by host>", "a": "this is var a"}`,
		wasm: func(b *testing.B) []byte {
			data, err := os.ReadFile(filepath.Join(sdkDir(b), "wasm", "count_vowels_std.wasm"))
			if err != nil {
				b.Fatal(err)
			}
			return data
		},
	}
}

func benchGuests() []benchGuest {
	return []benchGuest{
		{
			// The tiny guest: no WASI, no language runtime; what is left is
			// each host's cost of a call.
			name: "echo", fn: "echo", input: []byte(`{"name":"ana"}`), output: `{"name":"ana"}`,
			wasm: func(b *testing.B) []byte { return testwasm.WAT(b, filepath.Join("testdata", "echo.wat")) },
		},
		// A Go guest, the same module on both hosts: blockhost runs
		// Extism's plugin as a command, the runtime's start-up included.
		*countVowelsStd(),
		{
			// The same work as a block author writes it for blockhost: a
			// Go reactor built with the SDK, each step a fresh instance
			// started from the snapshot taken after initialisation. Extism
			// runs its own Go build of the work, count_vowels_std.
			name: "go-sdk", input: []byte(`{"text":"ben"}`), output: `{"count":1}`, snapshot: true,
			wasm:   func(b *testing.B) []byte { return testwasm.GoReactor(b, filepath.Join("testdata", "vowels")) },
			extism: countVowelsStd(),
		},
	}
}

// BenchmarkCompare measures one call of each guest: a fresh blockhost step
// on each engine, a call on a fresh Extism plugin instance (compiled once,
// as blockhost's block is), and a call on one reused Extism instance. It
// prints, from the same run, each figure divided by Extism's fresh call.
func BenchmarkCompare(b *testing.B) {
	ctx := context.Background()
	for _, g := range benchGuests() {
		wasm := g.wasm(b)
		perOp := map[string]time.Duration{}
		var mu sync.Mutex
		record := func(name string, b *testing.B) {
			mu.Lock()
			perOp[name] = b.Elapsed() / time.Duration(b.N)
			mu.Unlock()
		}
		rts := runtimes(b, false)
		for _, engine := range []string{"wazero", "wasmtime"} {
			r, ok := rts[engine]
			if !ok {
				continue
			}
			blk, err := r.rt.Load(ctx, g.name, wasm)
			if err != nil {
				b.Fatal(err)
			}
			if blk.UsesSnapshot() != g.snapshot {
				b.Fatalf("blockhost %s %s starts from a snapshot: %v, want %v", engine, g.name, blk.UsesSnapshot(), g.snapshot)
			}
			step := host.Step{Function: g.fn, Input: g.input}
			check(b, g, "blockhost "+engine, blk.Run(ctx, step))
			name := "blockhost-" + engine + "-fresh"
			b.Run(g.name+"/"+name, func(b *testing.B) {
				for b.Loop() {
					if res := blk.Run(ctx, step); res.Status != abi.StatusSuccess {
						b.Fatal(res.Error)
					}
				}
				record(name, b)
			})
		}

		x := &g
		if g.extism != nil {
			x = g.extism
		}
		compiled, err := extism.NewCompiledPlugin(ctx, extism.Manifest{Wasm: []extism.Wasm{extism.WasmData{Data: x.wasm(b)}}},
			extism.PluginConfig{EnableWasi: true, RuntimeConfig: wazero.NewRuntimeConfig().WithCompilationCache(extismCacheFor(b))}, nil)
		if err != nil {
			b.Fatal(err)
		}
		instCfg := extism.PluginInstanceConfig{ModuleConfig: wazero.NewModuleConfig().WithSysWalltime()}
		callFresh := func() ([]byte, error) {
			p, err := compiled.Instance(ctx, instCfg)
			if err != nil {
				return nil, err
			}
			defer p.Close(ctx)
			p.SetLogger(func(extism.LogLevel, string) {})
			rc, out, err := p.Call(x.fn, x.input)
			if err == nil && rc != 0 {
				err = fmt.Errorf("returned %d", rc)
			}
			return out, err
		}
		if out, err := callFresh(); err != nil || string(out) != x.output {
			b.Fatalf("extism %s: %q, %v; want %q", x.name, out, err, x.output)
		}
		b.Run(g.name+"/extism-fresh", func(b *testing.B) {
			for b.Loop() {
				if _, err := callFresh(); err != nil {
					b.Fatal(err)
				}
			}
			record("extism-fresh", b)
		})
		reused, err := compiled.Instance(ctx, instCfg)
		if err != nil {
			b.Fatal(err)
		}
		reused.SetLogger(func(extism.LogLevel, string) {})
		b.Run(g.name+"/extism-reused", func(b *testing.B) {
			for b.Loop() {
				// A Go command exits at the end of _start: Extism's reused
				// instance cannot call it again, so only the tiny guest has
				// a reused figure.
				if _, _, err := reused.Call(x.fn, x.input); err != nil {
					b.Skipf("a reused instance cannot call %s again: %v", x.fn, err)
				}
			}
			record("extism-reused", b)
		})
		reused.Close(ctx)
		compiled.Close(ctx)
		printRatios(g.name, perOp)
	}
}

func check(b *testing.B, g benchGuest, who string, res *abi.StepResult) {
	b.Helper()
	if res.Status != abi.StatusSuccess || !bytes.Equal(outputBytes(res), []byte(g.output)) {
		b.Fatalf("%s %s: %s %q %v; want %q", who, g.name, res.Status, outputBytes(res), res.Error, g.output)
	}
}

// printRatios prints each figure of one guest and its ratio to Extism's
// fresh call, all from this run.
func printRatios(guest string, perOp map[string]time.Duration) {
	base := perOp["extism-fresh"]
	names := make([]string, 0, len(perOp))
	for n := range perOp {
		names = append(names, n)
	}
	sort.Strings(names)
	var sb strings.Builder
	fmt.Fprintf(&sb, "\ncomparison, guest %s (per call; ratio to extism-fresh):\n", guest)
	for _, n := range names {
		ratio := "-"
		if base > 0 {
			ratio = fmt.Sprintf("%.3f", float64(perOp[n])/float64(base))
		}
		fmt.Fprintf(&sb, "  %-26s %12v  %s\n", n, perOp[n].Round(100*time.Nanosecond), ratio)
	}
	fmt.Print(sb.String())
}
