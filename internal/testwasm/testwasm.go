// Package testwasm builds the WebAssembly fixtures tests run: .wat files
// with wat2wasm (from wabt) and Go packages with GOOS=wasip1 GOARCH=wasm.
// Builds are cached for the life of the test process.
package testwasm

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
)

var (
	mu    sync.Mutex
	cache = map[string]*build{}
	dir   string
)

type build struct {
	once sync.Once
	path string
	err  string
}

func outDir(t testing.TB) string {
	mu.Lock()
	defer mu.Unlock()
	if dir == "" {
		d, err := os.MkdirTemp("", "blockhost-testwasm-")
		if err != nil {
			t.Fatalf("testwasm: %v", err)
		}
		dir = d
	}
	return dir
}

func get(key string) *build {
	mu.Lock()
	defer mu.Unlock()
	b, ok := cache[key]
	if !ok {
		b = &build{}
		cache[key] = b
	}
	return b
}

// ModuleRoot returns the repository's root directory.
func ModuleRoot(t testing.TB) string {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		t.Fatal("testwasm: cannot locate source")
	}
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

// WATFile assembles a .wat file and returns the path of the .wasm.
func WATFile(t testing.TB, watPath string) string {
	t.Helper()
	abs, err := filepath.Abs(watPath)
	if err != nil {
		t.Fatal(err)
	}
	b := get("wat:" + abs)
	b.once.Do(func() {
		if _, err := exec.LookPath("wat2wasm"); err != nil {
			b.err = "wat2wasm not found: install wabt (apt-get install wabt)"
			return
		}
		out := filepath.Join(outDir(t), filepath.Base(abs)+"-"+hash(abs)+".wasm")
		if msg, err := exec.Command("wat2wasm", "--enable-all", abs, "-o", out).CombinedOutput(); err != nil {
			b.err = "wat2wasm " + abs + ": " + string(msg)
			return
		}
		b.path = out
	})
	if b.err != "" {
		t.Fatal(b.err)
	}
	return b.path
}

// WAT assembles a .wat file and returns the module's bytes.
func WAT(t testing.TB, watPath string) []byte {
	t.Helper()
	return read(t, WATFile(t, watPath))
}

// GoFile builds the Go main package in pkgDir for wasip1 and returns the
// path of the .wasm.
func GoFile(t testing.TB, pkgDir string) string {
	t.Helper()
	return goBuild(t, pkgDir, "")
}

// GoReactorFile builds the Go main package in pkgDir for wasip1 as a
// reactor (-buildmode=c-shared, what blockhost build makes of a block that
// uses the SDK) and returns the path of the .wasm.
func GoReactorFile(t testing.TB, pkgDir string) string {
	t.Helper()
	return goBuild(t, pkgDir, "c-shared")
}

// GoReactor is GoReactorFile's module bytes.
func GoReactor(t testing.TB, pkgDir string) []byte {
	t.Helper()
	return read(t, GoReactorFile(t, pkgDir))
}

func goBuild(t testing.TB, pkgDir, buildmode string) string {
	t.Helper()
	abs, err := filepath.Abs(pkgDir)
	if err != nil {
		t.Fatal(err)
	}
	b := get("go:" + buildmode + ":" + abs)
	b.once.Do(func() {
		out := filepath.Join(outDir(t), filepath.Base(abs)+"-"+buildmode+hash(abs)+".wasm")
		args := []string{"build", "-o", out}
		if buildmode != "" {
			args = append(args, "-buildmode="+buildmode)
		}
		cmd := exec.Command("go", append(args, ".")...)
		cmd.Dir = abs
		cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm", "CGO_ENABLED=0")
		if msg, err := cmd.CombinedOutput(); err != nil {
			b.err = "go build " + abs + ": " + string(msg)
			return
		}
		b.path = out
	})
	if b.err != "" {
		t.Fatal(b.err)
	}
	return b.path
}

// Go builds the Go main package in pkgDir for wasip1 and returns the
// module's bytes.
func Go(t testing.TB, pkgDir string) []byte {
	t.Helper()
	return read(t, GoFile(t, pkgDir))
}

func read(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func hash(s string) string {
	var h uint32 = 2166136261
	for i := 0; i < len(s); i++ {
		h ^= uint32(s[i])
		h *= 16777619
	}
	const digits = "0123456789abcdef"
	out := make([]byte, 8)
	for i := range out {
		out[i] = digits[h>>(28-4*i)&0xf]
	}
	return string(out)
}

// SharedDir returns the directory name inside the fixtures' directory,
// created on first use and shared by every test of the process: for what
// is worth keeping from test to test, such as a compile cache, since
// compiling a Go module takes seconds under the race detector.
func SharedDir(t testing.TB, name string) string {
	t.Helper()
	d := filepath.Join(outDir(t), name)
	if err := os.MkdirAll(d, 0o700); err != nil {
		t.Fatalf("testwasm: %v", err)
	}
	return d
}
