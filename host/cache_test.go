package host_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/hashicorp/go-hclog"

	"github.com/blockhost/blockhost/abi"
	"github.com/blockhost/blockhost/host"
	"github.com/blockhost/blockhost/host/engine"
	"github.com/blockhost/blockhost/internal/testwasm"
)

// cacheFixture is a module the compile-cache tests load, and the result
// it must give whatever the cache holds.
type cacheFixture struct {
	name  string
	input string
	check func(t *testing.T, res *abi.StepResult)
}

var cacheFixtures = []cacheFixture{
	{"trap", "", func(t *testing.T, res *abi.StepResult) {
		if res.Status != abi.StatusError || res.Error == nil || res.Error.Code != abi.CodeExecutionFailed {
			t.Errorf("trap.wat: status %q error %+v, want error %s", res.Status, res.Error, abi.CodeExecutionFailed)
		}
	}},
	{"echo", `"hello"`, func(t *testing.T, res *abi.StepResult) {
		if res.Status != abi.StatusSuccess || string(res.Output) != `"hello"` {
			t.Errorf("echo.wat: status %q output %q error %+v, want success %q", res.Status, res.Output, res.Error, `"hello"`)
		}
	}},
}

// cacheDamage breaks a cache directory holding one module's entry. other
// is a directory holding the entry of another module of the same shape.
type cacheDamage struct {
	name string
	// unprivileged runs the step as a user without the rights root has,
	// the damage being about rights.
	unprivileged bool
	// repaired is true when the step is expected to leave a good entry.
	repaired bool
	// warning is what the one warning must say.
	warning string
	damage  func(t *testing.T, dir, entry, other string)
}

var cacheDamages = []cacheDamage{
	{name: "swap", warning: "written for another module", repaired: true, damage: func(t *testing.T, _, entry, other string) {
		data, err := os.ReadFile(cacheEntry(t, other))
		if err != nil {
			t.Fatal(err)
		}
		writeFile(t, entry, data)
	}},
	{name: "offsetTable", warning: "checksum mismatch", repaired: true, damage: func(t *testing.T, _, entry, _ string) {
		data := readFile(t, entry)
		data[offsetTableByte(t, data)] ^= 0x40
		writeFile(t, entry, data)
	}},
	{name: "flippedBytes", warning: "checksum mismatch", repaired: true, damage: func(t *testing.T, _, entry, _ string) {
		data := readFile(t, entry)
		for i := range 4 {
			data[len(data)/2+i*7] ^= 0xff
		}
		writeFile(t, entry, data)
	}},
	{name: "truncated", warning: "checksum mismatch", repaired: true, damage: func(t *testing.T, _, entry, _ string) {
		writeFile(t, entry, readFile(t, entry)[:len(readFile(t, entry))/2])
	}},
	{name: "empty", warning: "truncated", repaired: true, damage: func(t *testing.T, _, entry, _ string) {
		writeFile(t, entry, nil)
	}},
	{name: "directoryInPlace", warning: "not a regular file", repaired: true, damage: func(t *testing.T, _, entry, _ string) {
		if err := os.Remove(entry); err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Join(entry, "sub"), 0o700); err != nil {
			t.Fatal(err)
		}
	}},
	{name: "unreadable", warning: "permission denied", unprivileged: true, repaired: true, damage: func(t *testing.T, dir, entry, _ string) {
		giveToNobody(t, dir)
		if err := os.Chmod(entry, 0); err != nil {
			t.Fatal(err)
		}
	}},
	{name: "readOnlyDir", warning: "compile cache unusable", unprivileged: true, damage: func(t *testing.T, dir, _, _ string) {
		// An empty cache: every module is uncached and must still run.
		if err := os.RemoveAll(dir); err != nil {
			t.Fatal(err)
		}
		if err := os.Mkdir(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		giveToNobody(t, dir)
		if err := os.Chmod(dir, 0o500); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.Chmod(dir, 0o700) })
	}},
	{name: "notADirectory", warning: "compile cache unusable", damage: func(t *testing.T, dir, _, _ string) {
		if err := os.RemoveAll(dir); err != nil {
			t.Fatal(err)
		}
		writeFile(t, dir, []byte("a file where the cache directory should be"))
	}},
}

// TestCompileCache_damage: on every engine, whatever is wrong with the
// compile cache, a step gives its correct result, and the runtime says so
// in exactly one warning; where the directory allows, the damaged entry is
// replaced, and the next runtime uses it without a word.
func TestCompileCache_damage(t *testing.T) {
	for _, name := range engine.Names() {
		t.Run(name, func(t *testing.T) {
			if _, err := host.NewRuntime(context.Background(), host.NewRuntimeConfig().WithEngine(name)); errors.Is(err, engine.ErrUnavailable) {
				t.Skip(err)
			}
			for _, d := range cacheDamages {
				t.Run(d.name, func(t *testing.T) {
					for _, fx := range cacheFixtures {
						t.Run(fx.name, func(t *testing.T) {
							testCacheDamage(t, name, d, fx)
						})
					}
				})
			}
		})
	}
}

func testCacheDamage(t *testing.T, engineName string, d cacheDamage, fx cacheFixture) {
	dir, other := t.TempDir(), t.TempDir()
	wasm := testwasm.WAT(t, filepath.Join("testdata", fx.name+".wat"))
	twin := map[string]string{"trap": "notrap", "echo": "trap"}[fx.name]
	// Fill both caches; the first step compiles, quietly.
	if warnings := cachedStep(t, engineName, dir, fx, wasm, false); warnings != "" {
		t.Fatalf("filling the cache: %s", warnings)
	}
	cachedStep(t, engineName, other, cacheFixture{twin, "", func(*testing.T, *abi.StepResult) {}},
		testwasm.WAT(t, filepath.Join("testdata", twin+".wat")), false)

	d.damage(t, dir, cacheEntry(t, dir), other)
	warnings := cachedStep(t, engineName, dir, fx, wasm, d.unprivileged)
	if n := strings.Count(warnings, "\n"); n != 1 || !strings.Contains(warnings, d.warning) {
		t.Errorf("%d warnings, want 1 saying %q:\n%s", n, d.warning, warnings)
	}
	if !d.repaired {
		return
	}
	if warnings := cachedStep(t, engineName, dir, fx, wasm, d.unprivileged); warnings != "" {
		t.Errorf("the entry was not replaced by a good one:\n%s", warnings)
	}
}

// cachedStep runs wasm once on a new runtime whose compile cache is dir,
// checks its result, and returns the runtime's warnings, one per line.
func cachedStep(t *testing.T, engineName, dir string, fx cacheFixture, wasm []byte, unprivileged bool) string {
	t.Helper()
	ctx := context.Background()
	logs := &syncBuffer{}
	logger := hclog.New(&hclog.LoggerOptions{Output: logs, Level: hclog.Warn})
	var (
		rt  *host.Runtime
		blk *host.Block
		err error
	)
	load := func() {
		rt, err = host.NewRuntime(ctx, host.NewRuntimeConfig().WithEngine(engineName).WithCacheDir(dir).WithLogger(logger))
		if err == nil {
			blk, err = rt.Load(ctx, fx.name, wasm)
		}
	}
	if unprivileged {
		asNobody(t, load)
	} else {
		load()
	}
	if rt != nil {
		defer rt.Close(ctx)
	}
	if err != nil {
		t.Fatalf("load: %v (logs: %s)", err, logs.String())
	}
	fx.check(t, blk.Run(ctx, host.Step{Input: []byte(fx.input)}))
	return logs.String()
}

// cacheEntry returns the one entry of the cache in dir.
func cacheEntry(t *testing.T, dir string) string {
	t.Helper()
	all, err := filepath.Glob(filepath.Join(dir, "*", "*.entry"))
	// The compiled code's entry: not the wazero engine's prepared module,
	// kept in a directory of its own (host/engine/wazero/prepared.go).
	m := slices.DeleteFunc(all, func(path string) bool {
		return strings.HasPrefix(filepath.Base(filepath.Dir(path)), "blockhost-prepared-")
	})
	if err != nil || len(m) != 1 {
		t.Fatalf("cache entries %v (%v), want one", m, err)
	}
	return m[0]
}

// offsetTableByte returns the position, in an entry, of the first
// function's offset in wazero's table of function offsets, or of the
// section-header offset of wasmtime's ELF image: in either case a number
// the engine jumps or reads by.
func offsetTableByte(t *testing.T, data []byte) int {
	t.Helper()
	if i := bytes.Index(data, []byte("WAZEVO")); i >= 0 {
		versionLen := int(data[i+6])
		return i + 6 + 1 + versionLen + 4
	}
	if i := bytes.Index(data, []byte("\x7fELF")); i >= 0 {
		return i + 0x28 // e_shoff
	}
	t.Fatal("entry holds neither wazero's nor wasmtime's format")
	return 0
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func writeFile(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

// nobody is the user unprivileged steps run as when the tests run as
// root, who may read and write anything.
const nobody = 65534

// giveToNobody hands dir and everything in it to nobody, so that rights
// can be taken away from asNobody's steps.
func giveToNobody(t *testing.T, dir string) {
	t.Helper()
	if os.Geteuid() != 0 {
		return
	}
	// The test's temporary directory is root's alone; let nobody through.
	if err := os.Chmod(filepath.Dir(dir), 0o711); err != nil {
		t.Fatal(err)
	}
	err := filepath.Walk(dir, func(path string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(path, nobody, nobody)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// asNobody runs f with the file-system rights of an ordinary user. Run by
// root, it runs f on an OS thread of its own whose file-system user is
// nobody (setfsuid), which also drops root's power to override file
// permissions on that thread only; the thread is discarded afterwards.
// Every file access of a compilation happens on the calling goroutine,
// so f's compilations see the rights an ordinary user would.
func asNobody(t *testing.T, f func()) {
	t.Helper()
	if os.Geteuid() != 0 {
		f()
		return
	}
	var wg sync.WaitGroup
	var fail string
	wg.Add(1)
	go func() {
		defer wg.Done()
		// Never unlocked: the goroutine's end discards the thread and its
		// changed identity with it.
		runtime.LockOSThread()
		syscall.Setfsgid(nobody)
		syscall.Setfsuid(nobody)
		if prev, _ := setfsuidQuery(); prev != nobody {
			fail = "setfsuid did not take effect"
			return
		}
		f()
	}()
	wg.Wait()
	if fail != "" {
		t.Fatal(fail)
	}
}

// setfsuidQuery returns the calling thread's file-system user: setfsuid
// with an invalid id changes nothing and returns the current one.
func setfsuidQuery() (int, error) {
	r, _, errno := syscall.RawSyscall(syscall.SYS_SETFSUID, ^uintptr(0), 0, 0)
	if errno != 0 {
		return 0, errno
	}
	return int(r), nil
}

// TestRuntime_notWasm: bytes that are not a WebAssembly module are refused
// before any engine sees them, with one line saying so.
func TestRuntime_notWasm(t *testing.T) {
	forEachEngine(t, func(t *testing.T, rt *host.Runtime) {
		_, err := rt.Load(context.Background(), "junk", []byte("#!/bin/sh\necho hi\n"))
		if !errors.Is(err, host.ErrInvalidModule) || err.Error() != `module junk: not a WebAssembly module (no \0asm header)` {
			t.Fatalf("%v, want an invalid module with no \\0asm header", err)
		}
	})
}
