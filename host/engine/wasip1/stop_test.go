package wasip1_test

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/blockhost/blockhost/host/engine"
	_ "github.com/blockhost/blockhost/host/engine/wasmtime"
	_ "github.com/blockhost/blockhost/host/engine/wazero"
	"github.com/blockhost/blockhost/internal/testwasm"
)

// TestStopWhenDone: a guest whose sleep is cut by the end of its run never
// runs again — the fd_write after the sleep does not happen — on every
// engine.
func TestStopWhenDone(t *testing.T) {
	wasm := testwasm.WAT(t, filepath.Join("testdata", "sleepthenwrite.wat"))
	for _, name := range engine.Names() {
		t.Run(name, func(t *testing.T) {
			factory, _ := engine.Lookup(name)
			eng, err := factory(context.Background(), engine.Config{})
			if errors.Is(err, engine.ErrUnavailable) {
				t.Skip(err)
			}
			if err != nil {
				t.Fatal(err)
			}
			defer eng.Close(context.Background())
			mod, err := eng.Compile(context.Background(), wasm)
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
			defer cancel()
			var out bytes.Buffer
			start := time.Now()
			_, err = mod.Run(ctx, engine.RunConfig{Entry: []string{"_start"}, Stdout: &out})
			if !errors.Is(err, engine.ErrInterrupted) {
				t.Fatalf("run: %v, want ErrInterrupted", err)
			}
			if out.Len() != 0 {
				t.Errorf("the guest ran after its sleep was cut and wrote %q", out.Bytes())
			}
			if took := time.Since(start); took > 5*time.Second {
				t.Errorf("took %v; the sleep was not cut", took)
			}
		})
	}
}
