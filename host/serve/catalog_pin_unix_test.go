//go:build unix

package serve

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/blockhost/blockhost/internal/testwasm"
)

// TestCatalog_pinOneRead: the pin is checked on the very bytes compiled.
// The module is a named pipe that hands the pinned module to its first
// reader and another module to every later one; a server that checked
// one read and compiled another would serve the other.
func TestCatalog_pinOneRead(t *testing.T) {
	root := filepath.Join(testwasm.ModuleRoot(t), "host", "testdata")
	pinned := testwasm.WAT(t, filepath.Join(root, "echo.wat"))
	other := testwasm.WAT(t, filepath.Join(root, "loop.wat"))
	dir := t.TempDir()
	fifo := filepath.Join(dir, "hello.wasm")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Skipf("no named pipes here: %v", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "hello.hcl"), []byte(`block "hello" { module = "hello.wasm" }`), 0o600); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // the pipe's writer: the pinned bytes to the first reader, the other to later ones
		defer wg.Done()
		const first, between, later = 0, 1, 2
		phase := first
		for {
			select {
			case <-done:
				return
			default:
			}
			// Non-blocking: it opens only while a reader has the pipe open.
			f, err := os.OpenFile(fifo, os.O_WRONLY|syscall.O_NONBLOCK, 0)
			if err != nil {
				if phase == between {
					phase = later // the first reader is gone
				}
				time.Sleep(2 * time.Millisecond)
				continue
			}
			_ = syscall.SetNonblock(int(f.Fd()), false)
			switch phase {
			case first:
				_, _ = f.Write(pinned)
				phase = between
			case later:
				_, _ = f.Write(other)
			}
			// Between: still the first reader, before it saw the end.
			f.Close()
		}
	}()
	defer wg.Wait()
	defer close(done)

	sum := sha256.Sum256(pinned)
	cfg := testConfig(t, t.TempDir(), nil)
	f, err := Parse([]byte(testConf+`block "hello" {
  manifest = "hello.hcl"
  sha256 = "`+hex.EncodeToString(sum[:])+`"
}`), filepath.Join(dir, "serve.hcl"))
	if err != nil {
		t.Fatal(err)
	}
	h := start(t, cfg.WithFile(f))
	res := h.do("POST", "/v1/steps?wait=20s", tokAna, map[string]any{"block": "hello", "input": map[string]any{"x": 1}}).json(t)
	if res["status"] != "success" || res["module"] != "sha256:"+hex.EncodeToString(sum[:]) {
		t.Fatalf("the step did not run the pinned module: %v", res)
	}
}
