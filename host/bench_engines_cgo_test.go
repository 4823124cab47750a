//go:build cgo

package host_test

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/bytecodealliance/wasmtime-go/v39"

	"github.com/blockhost/blockhost/abi"
	"github.com/blockhost/blockhost/host"
	wasmtimeengine "github.com/blockhost/blockhost/host/engine/wasmtime"
)

// The raw wasmtime embedding: an engine, a linker with WASI and a
// "blockhost" module whose functions do their job with no accounting,
// limits, logging or step state, and a fresh store and instance per step.
// The "engineconfig" variant uses the engine's own wasmtime configuration
// (epoch interruption, the pooling allocator) and gives every step an epoch
// deadline, as the host must to stop a guest: the fair baseline. "default"
// is wasmtime's default configuration: on-demand allocation, and no way to
// stop a guest. Both run the module bytes as given, without the host's
// rewrite of memory.grow.
func init() {
	rawEngines["wasmtime"] = rawEngine{
		variants: []rawVariant{
			{"engineconfig", func(b *testing.B, wasm []byte) func(*testing.B, []byte) {
				return newBenchRawWasmtime(b, wasm, true).runHello
			}},
			{"default", func(b *testing.B, wasm []byte) func(*testing.B, []byte) {
				return newBenchRawWasmtime(b, wasm, false).runHello
			}},
		},
		compile: benchRawWasmtimeCompile,
	}
}

func benchRawWasmtimeEngine(engineConfig bool) *wasmtime.Engine {
	if engineConfig {
		return wasmtime.NewEngineWithConfig(wasmtimeengine.BaseConfig())
	}
	return wasmtime.NewEngine()
}

type benchRawWasmtime struct {
	eng    *wasmtime.Engine
	linker *wasmtime.Linker
	mod    *wasmtime.Module
	epoch  bool

	// The current step's input and output; one step runs at a time.
	input, output []byte
}

func newBenchRawWasmtime(b *testing.B, wasm []byte, epoch bool) *benchRawWasmtime {
	b.Helper()
	r := &benchRawWasmtime{eng: benchRawWasmtimeEngine(epoch), epoch: epoch}
	r.linker = wasmtime.NewLinker(r.eng)
	if err := r.linker.DefineWasi(); err != nil {
		b.Fatal(err)
	}
	mem := func(c *wasmtime.Caller) []byte { return c.GetExport("memory").Memory().UnsafeData(c) }
	ok := []wasmtime.Val{wasmtime.ValI32(int32(abi.ResultOK))}
	define := func(name string, f func(c *wasmtime.Caller, args []wasmtime.Val)) {
		sig, _ := abi.LookupFunction(name)
		types := func(ts []abi.ValueType) []*wasmtime.ValType {
			out := make([]*wasmtime.ValType, len(ts))
			for i, t := range ts {
				k := wasmtime.KindI32
				if t == abi.I64 {
					k = wasmtime.KindI64
				}
				out[i] = wasmtime.NewValType(k)
			}
			return out
		}
		err := r.linker.FuncNew(abi.ImportModule, name, wasmtime.NewFuncType(types(sig.Params), types(sig.Results)),
			func(c *wasmtime.Caller, args []wasmtime.Val) ([]wasmtime.Val, *wasmtime.Trap) {
				f(c, args)
				return ok, nil
			})
		if err != nil {
			b.Fatal(err)
		}
	}
	define(abi.FuncInputLen, func(c *wasmtime.Caller, a []wasmtime.Val) {
		binary.LittleEndian.PutUint32(mem(c)[a[0].I32():], uint32(len(r.input)))
	})
	define(abi.FuncInputRead, func(c *wasmtime.Caller, a []wasmtime.Val) {
		m := mem(c)
		n := copy(m[a[0].I32():a[0].I32()+a[1].I32()], r.input)
		binary.LittleEndian.PutUint32(m[a[2].I32():], uint32(n))
	})
	define(abi.FuncOutputWrite, func(c *wasmtime.Caller, a []wasmtime.Val) {
		r.output = append(r.output, mem(c)[a[0].I32():a[0].I32()+a[1].I32()]...)
	})
	// The guest is given the same deadline as under the host, so that it
	// does the same work.
	define(abi.FuncDeadline, func(c *wasmtime.Caller, a []wasmtime.Val) {
		binary.LittleEndian.PutUint64(mem(c)[a[0].I32():], uint64(host.DefaultLimits.Timeout))
	})
	for _, name := range []string{abi.FuncErrorSet, abi.FuncLog, abi.FuncCheck} {
		define(name, func(*wasmtime.Caller, []wasmtime.Val) {})
	}
	mod, err := wasmtime.NewModule(r.eng, wasm)
	if err != nil {
		b.Fatal(err)
	}
	r.mod = mod
	b.Cleanup(func() {
		r.mod.Close()
		r.linker.Close()
		r.eng.Close()
	})
	return r
}

// runHello runs one step in a fresh store and instance.
func (r *benchRawWasmtime) runHello(b *testing.B, input []byte) {
	r.input, r.output = input, r.output[:0]
	store := wasmtime.NewStore(r.eng)
	defer store.Close()
	if r.epoch {
		store.SetEpochDeadline(uint64(host.DefaultLimits.Timeout / time.Millisecond))
	}
	wasi := wasmtime.NewWasiConfig()
	wasi.SetArgv([]string{"hello"})
	store.SetWasi(wasi)
	inst, err := r.linker.Instantiate(store, r.mod)
	if err != nil {
		b.Fatalf("raw step: %v", err)
	}
	if _, err := inst.GetFunc(store, "_start").Call(store); err != nil {
		if e, ok := err.(*wasmtime.Error); !ok {
			b.Fatalf("raw step: %v", err)
		} else if code, exited := e.ExitStatus(); !exited || code != 0 {
			b.Fatalf("raw step: %v", err)
		}
	}
	if string(r.output) != benchHelloOutput {
		b.Fatalf("raw step: output %q, want %q", r.output, benchHelloOutput)
	}
}

// benchRawWasmtimeCompile compiles wasm on a new engine; with cacheDir,
// it keeps wasmtime's serialized module there and deserializes it when
// present, which is all a disk cache needs.
func benchRawWasmtimeCompile(b *testing.B, wasm []byte, cacheDir string) {
	eng := benchRawWasmtimeEngine(true)
	defer eng.Close()
	var path string
	if cacheDir != "" {
		sum := sha256.Sum256(wasm)
		path = filepath.Join(cacheDir, hex.EncodeToString(sum[:]))
		if data, err := os.ReadFile(path); err == nil {
			mod, err := wasmtime.NewModuleDeserialize(eng, data)
			if err != nil {
				b.Fatal(err)
			}
			mod.Close()
			return
		}
	}
	mod, err := wasmtime.NewModule(eng, wasm)
	if err != nil {
		b.Fatal(err)
	}
	defer mod.Close()
	if path != "" {
		data, err := mod.Serialize()
		if err != nil {
			b.Fatal(err)
		}
		if err := os.WriteFile(path, data, 0o600); err != nil {
			b.Fatal(err)
		}
	}
}
