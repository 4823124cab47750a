package host_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/blockhost/blockhost/abi"
	"github.com/blockhost/blockhost/host"
	"github.com/blockhost/blockhost/host/engine"
	"github.com/blockhost/blockhost/host/fscap"
	"github.com/blockhost/blockhost/internal/fsattack"
	"github.com/blockhost/blockhost/internal/testwasm"
)

// The filesystem capability's acceptance tests, through real blocks on
// every engine: testdata/fsblock (an SDK block, host calls) and
// testdata/fswasi (a plain WASI command, preopened directories).

// fsLogs is a log destination shared by a step's goroutines.
type fsLogs struct {
	mu sync.Mutex
	bytes.Buffer
}

func (b *fsLogs) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.Buffer.Write(p)
}

func (b *fsLogs) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.Buffer.String()
}

// fsEngine is one engine with the two test blocks loaded.
type fsEngine struct {
	name      string
	sdk, wasi *host.Block
	logs      *fsLogs
	rt        *host.Runtime
}

var (
	fsEnginesMu sync.Mutex
	fsEngines   = map[string]*fsEngine{}
)

// eachEngine runs fn for every engine the host has. The runtimes, and the
// blocks compiled on them, are shared by the tests of this file: compiling
// a Go module under the race detector takes most of a minute. The logs are
// reset for each test.
func eachEngine(t *testing.T, fn func(t *testing.T, e *fsEngine)) {
	for _, name := range engine.Names() {
		t.Run(name, func(t *testing.T) {
			e, err := fsEngineFor(t, name)
			if errors.Is(err, engine.ErrUnavailable) {
				t.Skipf("engine %s: %v", name, err)
			}
			if err != nil {
				t.Fatal(err)
			}
			e.logs.mu.Lock()
			e.logs.Reset()
			e.logs.mu.Unlock()
			fn(t, e)
		})
	}
}

func fsEngineFor(t *testing.T, name string) (*fsEngine, error) {
	fsEnginesMu.Lock()
	defer fsEnginesMu.Unlock()
	if e, ok := fsEngines[name]; ok {
		return e, nil
	}
	sdkWasm := testwasm.Go(t, "testdata/fsblock")
	wasiWasm := testwasm.Go(t, "testdata/fswasi")
	logs := &fsLogs{}
	logger := hclog.New(&hclog.LoggerOptions{Output: logs, JSONFormat: true, Level: hclog.Debug})
	rt, err := host.NewRuntime(context.Background(), host.NewRuntimeConfig().WithEngine(name).WithLogger(logger))
	if err != nil {
		return nil, err
	}
	e := &fsEngine{name: name, logs: logs, rt: rt}
	if e.sdk, err = rt.Load(context.Background(), "fsblock", sdkWasm); err != nil {
		return nil, err
	}
	if e.wasi, err = rt.Load(context.Background(), "fswasi", wasiWasm); err != nil {
		return nil, err
	}
	fsEngines[name] = e
	return e, nil
}

type fsOp struct {
	Op      string `json:"op"`
	Path    string `json:"path,omitempty"`
	PathB64 []byte `json:"path_b64,omitempty"`
	To      string `json:"to,omitempty"`
	Data    string `json:"data,omitempty"`
	MS      int    `json:"ms,omitempty"`
	MiB     int    `json:"mib,omitempty"`
}

type fsResult struct {
	Op      string   `json:"op"`
	Path    string   `json:"path"`
	Result  string   `json:"result"`
	Code    string   `json:"code"`
	Errno   string   `json:"errno"`
	Message string   `json:"message"`
	Error   string   `json:"error"`
	Data    string   `json:"data"`
	Seen    []string `json:"seen"`
	Reads   int      `json:"reads"`
	Denied  int      `json:"denied"`
	Failed  int      `json:"failed"`
}

func grantAt(dir string, ro bool) []fscap.Grant {
	return []fscap.Grant{{HostDir: dir, GuestPath: fsattack.GuestPath, ReadOnly: ro}}
}

// runSDK runs fsblock with several operations and returns their results.
func (e *fsEngine) runSDK(t *testing.T, grants []fscap.Grant, ops []fsOp) []fsResult {
	t.Helper()
	in, _ := json.Marshal(map[string]any{"ops": ops})
	res := e.sdk.Run(context.Background(), host.Step{Input: in, Grants: host.Grants{FS: grants},
		Limits: host.Limits{Output: 16 << 20, Timeout: time.Minute}})
	if res.Status != abi.StatusSuccess {
		t.Fatalf("fsblock: %s %+v", res.Status, res.Error)
	}
	var out struct{ Results []fsResult }
	if err := json.Unmarshal(res.Output, &out); err != nil {
		t.Fatalf("fsblock output %s: %v", res.Output, err)
	}
	return out.Results
}

// runWASI runs fswasi with several operations and returns their results.
func (e *fsEngine) runWASI(t *testing.T, grants []fscap.Grant, ops []fsOp) []fsResult {
	t.Helper()
	in, _ := json.Marshal(map[string]any{"ops": ops})
	res := e.wasi.Run(context.Background(), host.Step{Input: in, Grants: host.Grants{FS: grants},
		Limits: host.Limits{Output: 16 << 20, Timeout: time.Minute}})
	if res.Status != abi.StatusSuccess {
		t.Fatalf("fswasi: %s %+v", res.Status, res.Error)
	}
	var out []fsResult
	if err := json.Unmarshal(res.Output, &out); err != nil {
		t.Fatalf("fswasi output %s: %v", res.Output, err)
	}
	return out
}

var wantResult = map[fsattack.Want]string{
	fsattack.Denied:   "denied",
	fsattack.Invalid:  "invalid",
	fsattack.NotFound: "not_found",
}

// TestFS_traversalSDK: every payload, through the host calls of an SDK
// block, is refused as it should be, and nothing outside the grant is read
// or changed.
func TestFS_traversalSDK(t *testing.T) {
	eachEngine(t, func(t *testing.T, e *fsEngine) {
		l := fsattack.New(t)
		var ops []fsOp
		var wants []fsattack.Want
		var paths []string
		for _, p := range fsattack.Payloads() {
			add := func(op string) {
				ops = append(ops, fsOp{Op: op, PathB64: []byte(p.Path), Data: "pwned"})
				wants = append(wants, p.Want)
				paths = append(paths, p.Path)
			}
			add("read")
			add("stat")
			if p.Write {
				add("write")
				add("append")
			}
		}
		results := e.runSDK(t, grantAt(l.Grant, false), ops)
		if len(results) != len(ops) {
			t.Fatalf("%d results for %d operations", len(results), len(ops))
		}
		for i, r := range results {
			p := paths[i]
			if l.Leaked([]byte(r.Data)) {
				t.Errorf("%s %q leaked a canary", r.Op, p)
			}
			switch {
			case !strings.HasPrefix(p, "/"):
				// The SDK reads a relative name from the root ("data/x" is
				// "/data/x"), so these reach the host rooted: refused, or
				// the virtual directory above the grant.
				if r.Result == "ok" && !(p == "" && r.Op == "stat") {
					t.Errorf("%s %q succeeded", r.Op, p)
				}
			case p == "/" && r.Op == "stat":
				// The virtual directory above the grant.
			default:
				if w := wantResult[wants[i]]; r.Result != w {
					t.Errorf("%s %q: %s (%s), want %s", r.Op, p, r.Result, r.Message, w)
				}
			}
		}
		l.Check(t)
		if !strings.Contains(e.logs.String(), `"@message":"file operation denied"`) {
			t.Error("no denial was logged")
		}
	})
}

// TestFS_traversalWASI: the same payloads through a WASI command's
// preopened directory, by Go's os package and by raw WASI calls that skip
// Go's path cleaning. Every link planted in the grant is refused, and
// nothing outside the grant is read or changed.
func TestFS_traversalWASI(t *testing.T) {
	eachEngine(t, func(t *testing.T, e *fsEngine) {
		l := fsattack.New(t)
		var ops []fsOp
		for _, p := range fsattack.Payloads() {
			rel := strings.TrimPrefix(strings.TrimPrefix(p.Path, "/data"), "/")
			ops = append(ops, fsOp{Op: "read", PathB64: []byte(p.Path)}, fsOp{Op: "raw_read", PathB64: []byte(rel)})
			if p.Write {
				ops = append(ops, fsOp{Op: "write", PathB64: []byte(p.Path), Data: "pwned"}, fsOp{Op: "raw_write", PathB64: []byte(rel), Data: "pwned"})
			}
		}
		results := e.runWASI(t, grantAt(l.Grant, false), ops)
		if len(results) != len(ops) {
			t.Fatalf("%d results for %d operations", len(results), len(ops))
		}
		links := map[string]bool{}
		for _, ln := range fsattack.Links {
			if ln.Name != "link_ok" && ln.Name != "link_self" {
				links[ln.Name] = true
			}
		}
		for _, r := range results {
			if l.Leaked([]byte(r.Data)) {
				t.Errorf("%s %q leaked a canary", r.Op, r.Path)
			}
			rel := r.Path
			if !strings.HasPrefix(r.Op, "raw_") {
				rel = strings.TrimPrefix(rel, "/data/")
			}
			through := ""
			for ln := range links {
				if rel == ln || strings.HasPrefix(rel, ln+"/") {
					through = ln
				}
			}
			if through != "" && r.Result == "ok" {
				t.Errorf("%s %q through a planted link succeeded", r.Op, r.Path)
			}
		}
		l.Check(t)
	})
}

// TestFS_linkSwappedDuringStep swaps a directory of the grant for a link
// to outside it, over and over, while a block reads through it.
func TestFS_linkSwappedDuringStep(t *testing.T) {
	eachEngine(t, func(t *testing.T, e *fsEngine) {
		for _, way := range []string{"sdk", "wasi"} {
			t.Run(way, func(t *testing.T) {
				l := fsattack.New(t)
				sub := filepath.Join(l.Grant, "sub")
				stop := make(chan struct{})
				var wg sync.WaitGroup
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := 0; ; i++ {
						select {
						case <-stop:
							return
						default:
						}
						if i%2 == 0 {
							os.RemoveAll(sub)
							os.Symlink("../outside", sub)
						} else {
							os.Remove(sub)
							os.Mkdir(sub, 0o755)
							os.WriteFile(filepath.Join(sub, "file.txt"), []byte("inside-sub"), 0o644)
						}
						time.Sleep(50 * time.Microsecond)
					}
				}()
				ops := []fsOp{{Op: "loop_read", Path: "/data/sub/file.txt", MS: 300}}
				var r fsResult
				if way == "sdk" {
					r = e.runSDK(t, grantAt(l.Grant, false), ops)[0]
				} else {
					r = e.runWASI(t, grantAt(l.Grant, false), ops)[0]
				}
				close(stop)
				wg.Wait()
				for _, s := range r.Seen {
					if l.Leaked([]byte(s)) {
						t.Fatalf("a read through the swapped link leaked a canary (%d reads)", r.Reads)
					}
				}
				if r.Denied+r.Failed == 0 {
					t.Errorf("the swap never showed in %d reads", r.Reads)
				}
				l.Check(t)
			})
		}
	})
}

// TestFS_readOnly: a write under a read-only grant fails with
// permission_denied and leaves the file as it was.
func TestFS_readOnly(t *testing.T) {
	eachEngine(t, func(t *testing.T, e *fsEngine) {
		l := fsattack.New(t)
		in := filepath.Join(l.Grant, "in.txt")
		res := e.sdk.Run(context.Background(), host.Step{
			Input:  []byte(`{"op":"write","path":"/data/in.txt","data":"changed"}`),
			Grants: host.Grants{FS: grantAt(l.Grant, true)},
		})
		if res.Status != abi.StatusError || res.Error.Code != abi.CodePermissionDenied || res.Error.Class != abi.ClassPermanent {
			t.Fatalf("SDK write under ro: %s %+v", res.Status, res.Error)
		}
		if b, _ := os.ReadFile(in); string(b) != "inside" {
			t.Fatalf("in.txt = %q", b)
		}
		// Reading is allowed.
		r := e.runSDK(t, grantAt(l.Grant, true), []fsOp{{Op: "read", Path: "/data/in.txt"}})[0]
		if r.Result != "ok" || r.Data != "inside" {
			t.Fatalf("SDK read under ro: %+v", r)
		}

		results := e.runWASI(t, grantAt(l.Grant, true), []fsOp{
			{Op: "read", Path: "/data/in.txt"},
			{Op: "write", Path: "/data/in.txt", Data: "changed"},
			{Op: "append", Path: "/data/in.txt", Data: "changed"},
			{Op: "write", Path: "/data/new.txt", Data: "new"},
			{Op: "mkdir", Path: "/data/dir"},
			{Op: "remove", Path: "/data/in.txt"},
			{Op: "rename", Path: "/data/in.txt", To: "/data/moved.txt"},
		})
		if results[0].Result != "ok" || results[0].Data != "inside" {
			t.Fatalf("WASI read under ro: %+v", results[0])
		}
		for _, r := range results[1:] {
			if r.Result == "ok" {
				t.Errorf("WASI %s %s under ro succeeded", r.Op, r.Path)
			}
			if r.Errno != "EROFS" {
				t.Errorf("WASI %s %s under ro: errno %s (%s), want EROFS", r.Op, r.Path, r.Errno, r.Error)
			}
		}
		if b, _ := os.ReadFile(in); string(b) != "inside" {
			t.Fatalf("in.txt = %q", b)
		}
		for _, p := range []string{"new.txt", "dir", "moved.txt"} {
			if _, err := os.Lstat(filepath.Join(l.Grant, p)); err == nil {
				t.Errorf("%s was created under a read-only grant", p)
			}
		}
	})
}

// TestFS_quota: a write past the byte quota fails with quota_exceeded and
// leaves no partial file.
func TestFS_quota(t *testing.T) {
	eachEngine(t, func(t *testing.T, e *fsEngine) {
		dir := t.TempDir()
		grants := []fscap.Grant{{HostDir: dir, GuestPath: "/data", Quota: fscap.Quota{WriteBytes: 1 << 20}}}
		big := strings.Repeat("x", 1<<20+1)
		res := e.sdk.Run(context.Background(), host.Step{
			Input:  []byte(`{"op":"write","path":"/data/big.txt","data":"` + big + `"}`),
			Grants: host.Grants{FS: grants},
		})
		if res.Status != abi.StatusError || res.Error.Code != abi.CodeQuotaExceeded {
			t.Fatalf("SDK write over the quota: %s %+v", res.Status, res.Error)
		}
		// Streamed in pieces: the first fit, the last does not; the append
		// that crosses the line is undone.
		piece := strings.Repeat("y", 400<<10)
		res = e.sdk.Run(context.Background(), host.Step{
			Input: []byte(`{"ops":[{"op":"write","path":"/data/p.txt","data":"` + piece + `"},` +
				`{"op":"append","path":"/data/p.txt","data":"` + piece + `"},` +
				`{"op":"append","path":"/data/p.txt","data":"` + piece + `"}]}`),
			Grants: host.Grants{FS: grants},
			Limits: host.Limits{Output: 4 << 20},
		})
		if res.Status != abi.StatusError || res.Error.Code != abi.CodeQuotaExceeded {
			t.Fatalf("SDK appends over the quota: %s %+v — a quota refusal ends the step even if the block goes on", res.Status, res.Error)
		}
		if info, err := os.Stat(filepath.Join(dir, "p.txt")); err != nil || info.Size() != 800<<10 {
			t.Fatalf("p.txt after the refused append: %v %v", info, err)
		}
		in, _ := json.Marshal(map[string]any{"ops": []fsOp{{Op: "write", Path: "/data/w.txt", Data: big}}})
		res = e.wasi.Run(context.Background(), host.Step{Input: in, Grants: host.Grants{FS: grants}})
		if res.Status != abi.StatusError || res.Error.Code != abi.CodeQuotaExceeded {
			t.Fatalf("WASI write over the quota: %s %+v", res.Status, res.Error)
		}
		for _, p := range []string{"big.txt", "w.txt"} {
			if _, err := os.Lstat(filepath.Join(dir, p)); err == nil {
				t.Errorf("a refused write left %s", p)
			}
		}
		waitNoTemps(t, dir)
	})
}

func waitNoTemps(t *testing.T, dir string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		ents, _ := os.ReadDir(dir)
		var left []string
		for _, e := range ents {
			if strings.HasPrefix(e.Name(), ".blockhost-tmp-") {
				left = append(left, e.Name())
			}
		}
		if len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("staged writes left: %v", left)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// fifoGrant makes a FIFO with no writer in a fresh directory, granted with
// a 200 ms operation timeout. The FIFO is released when the test ends.
func fifoGrant(t *testing.T) []fscap.Grant {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
	t.Cleanup(func() {
		// A writer lets the abandoned open return; with no reader left the
		// non-blocking open fails, which is as good.
		for range 20 {
			if w, err := os.OpenFile(fifo, os.O_WRONLY|syscall.O_NONBLOCK, 0); err == nil {
				w.Close()
			}
			time.Sleep(5 * time.Millisecond)
		}
	})
	return []fscap.Grant{{HostDir: dir, GuestPath: "/data", Timeout: 200 * time.Millisecond}}
}

// TestFS_fifoTimeout: reading a FIFO that has no writer, with a 200 ms
// operation timeout, returns timeout at about 200 ms; the operation is
// abandoned and counted.
func TestFS_fifoTimeout(t *testing.T) {
	eachEngine(t, func(t *testing.T, e *fsEngine) {
		before := fscap.AbandonedTotal()
		start := time.Now()
		res := e.sdk.Run(context.Background(), host.Step{
			Input:  []byte(`{"op":"read","path":"/data/fifo"}`),
			Grants: host.Grants{FS: fifoGrant(t)},
		})
		took := time.Since(start)
		if res.Status != abi.StatusError || res.Error.Code != abi.CodeResourceUnavailable || res.Error.Class != abi.ClassRetryable ||
			!strings.Contains(res.Error.Message, "timed out") {
			t.Fatalf("SDK read of a FIFO: %s %+v", res.Status, res.Error)
		}
		if took < 200*time.Millisecond || took > 5*time.Second {
			t.Fatalf("SDK read of a FIFO took %v, want about 200ms", took)
		}
		if fscap.AbandonedTotal() <= before {
			t.Fatal("the stuck open was not counted as abandoned")
		}
		if !strings.Contains(e.logs.String(), `"@message":"file operation abandoned"`) {
			t.Error("the abandoned operation was not logged")
		}

		// The step's own deadline ends it on time too, as timeout.
		start = time.Now()
		grants := fifoGrant(t)
		grants[0].Timeout = time.Minute
		res = e.sdk.Run(context.Background(), host.Step{
			Input:  []byte(`{"op":"read","path":"/data/fifo"}`),
			Grants: host.Grants{FS: grants},
			Limits: host.Limits{Timeout: 200 * time.Millisecond},
		})
		if took := time.Since(start); res.Status != abi.StatusTimeout || took > 5*time.Second {
			t.Fatalf("SDK read of a FIFO under a 200ms step timeout: %s after %v", res.Status, took)
		}

		start = time.Now()
		r := e.runWASI(t, fifoGrant(t), []fsOp{{Op: "read", Path: "/data/fifo"}})[0]
		took = time.Since(start)
		if r.Result == "ok" || r.Errno != "EIO" {
			t.Fatalf("WASI read of a FIFO: %+v", r)
		}
		if took < 200*time.Millisecond || took > 5*time.Second {
			t.Fatalf("WASI read of a FIFO took %v, want about 200ms", took)
		}
	})
}

// TestFS_cancelLargeWrite cancels steps during a 1 GiB chunked write: each
// ends as cancelled within 100 ms, and the destination keeps its content.
func TestFS_cancelLargeWrite(t *testing.T) {
	grantFor := func(dir string) []fscap.Grant {
		return []fscap.Grant{{HostDir: dir, GuestPath: "/data", Timeout: time.Minute,
			Quota: fscap.Quota{WriteBytes: 2 << 30, FileSize: 2 << 30}}}
	}
	setup := func(t *testing.T) (string, string) {
		dir := t.TempDir()
		dst := filepath.Join(dir, "big.bin")
		if err := os.WriteFile(dst, []byte("old content"), 0o644); err != nil {
			t.Fatal(err)
		}
		return dir, dst
	}
	// cancelWhen cancels ctx once dir holds more than 16 MiB.
	cancelWhen := func(dir string, cancel context.CancelCauseFunc, at *time.Time, mu *sync.Mutex) {
		for {
			var size int64
			ents, _ := os.ReadDir(dir)
			for _, e := range ents {
				if info, err := e.Info(); err == nil {
					size += info.Size()
				}
			}
			if size > 16<<20 {
				mu.Lock()
				*at = time.Now()
				mu.Unlock()
				cancel(errors.New("the test cancelled the step"))
				return
			}
			time.Sleep(time.Millisecond)
		}
	}
	check := func(t *testing.T, res *abi.StepResult, dst string, at time.Time) {
		t.Helper()
		if res.Status != abi.StatusCancelled {
			t.Fatalf("status %s %+v, want cancelled", res.Status, res.Error)
		}
		if since := time.Since(at); since > 5*time.Second {
			t.Fatalf("the step ended %v after it was cancelled", since)
		}
		if b, _ := os.ReadFile(dst); string(b) != "old content" {
			t.Fatalf("the destination is %d bytes, want its old content", len(b))
		}
	}

	t.Run("native", func(t *testing.T) {
		rt := newRuntime(t)
		dir, dst := setup(t)
		blk := rt.Native("test.bigwrite", func(ctx context.Context, call *host.Call) ([]byte, error) {
			s, err := fscap.Open(ctx, call.Step.Grants.FS, fscap.Config{Logger: call.Logger})
			if err != nil {
				return nil, err
			}
			defer s.Close()
			_, err = s.Write(ctx, "/data/big.bin", io.LimitReader(fsZeros{}, 1<<30), 1<<30, 0)
			return nil, fscap.StepError(err)
		})
		ctx, cancel := context.WithCancelCause(context.Background())
		var at time.Time
		var mu sync.Mutex
		go cancelWhen(dir, cancel, &at, &mu)
		res := blk.Run(ctx, host.Step{Grants: host.Grants{FS: grantFor(dir)}, Limits: host.Limits{Timeout: time.Minute}})
		mu.Lock()
		check(t, res, dst, at)
		mu.Unlock()
		waitNoTemps(t, dir)
	})
	eachEngine(t, func(t *testing.T, e *fsEngine) {
		for _, way := range []string{"sdk", "wasi"} {
			t.Run(way, func(t *testing.T) {
				dir, dst := setup(t)
				blk := e.sdk
				if way == "wasi" {
					blk = e.wasi
				}
				in, _ := json.Marshal(fsOp{Op: "bigwrite", Path: "/data/big.bin", MiB: 1024})
				if way == "wasi" {
					in, _ = json.Marshal(map[string]any{"ops": []fsOp{{Op: "bigwrite", Path: "/data/big.bin", MiB: 1024}}})
				}
				ctx, cancel := context.WithCancelCause(context.Background())
				var at time.Time
				var mu sync.Mutex
				go cancelWhen(dir, cancel, &at, &mu)
				res := blk.Run(ctx, host.Step{Input: in, Grants: host.Grants{FS: grantFor(dir)}, Limits: host.Limits{Timeout: time.Minute}})
				mu.Lock()
				check(t, res, dst, at)
				mu.Unlock()
			})
		}
	})
}

type fsZeros struct{}

func (fsZeros) Read(p []byte) (int, error) { clear(p); return len(p), nil }

// TestFS_bothWaysShareQuotas: a block writing through both the host calls
// and WASI is held to one quota.
func TestFS_allowedAndLogged(t *testing.T) {
	eachEngine(t, func(t *testing.T, e *fsEngine) {
		l := fsattack.New(t)
		results := e.runSDK(t, grantAt(l.Grant, false), []fsOp{
			{Op: "mkdir", Path: "/data/out/deep"},
			{Op: "write", Path: "/data/out/deep/a.txt", Data: "hello"},
			{Op: "create", Path: "/data/out/deep/a.txt", Data: "again"},
			{Op: "append", Path: "/data/out/deep/a.txt", Data: ", world"},
			{Op: "readfs", Path: "data/out/deep/a.txt"},
			{Op: "rename", Path: "/data/out/deep/a.txt", To: "/data/b.txt"},
			{Op: "list", Path: "/data"},
			{Op: "stat", Path: "/data/b.txt"},
			{Op: "walk", Path: "."},
			{Op: "remove", Path: "/data/b.txt"},
			{Op: "rename", Path: "/data/in.txt", To: "/elsewhere/in.txt"},
		})
		want := []string{"ok", "ok", "exists", "ok", "ok", "ok", "ok", "ok", "ok", "ok", "denied"}
		for i, r := range results {
			if r.Result != want[i] {
				t.Errorf("%s %s: %s (%s), want %s", r.Op, r.Path, r.Result, r.Message, want[i])
			}
		}
		if results[4].Data != "hello, world" {
			t.Errorf("read back %q", results[4].Data)
		}
		if s := strings.Join(results[6].Seen, ","); !strings.Contains(s, "b.txt,chain1") || strings.Contains(s, "blockhost-tmp") {
			t.Errorf("list: %s", s)
		}
		if s := strings.Join(results[8].Seen, ","); !strings.HasPrefix(s, ".,data,data/b.txt") {
			t.Errorf("walk: %s", s)
		}

		wres := e.runWASI(t, grantAt(l.Grant, false), []fsOp{
			{Op: "write", Path: "/data/w.txt", Data: "from wasi"},
			{Op: "append", Path: "/data/w.txt", Data: "!"},
			{Op: "read", Path: "/data/w.txt"},
			{Op: "list", Path: "/data"},
		})
		for _, r := range wres {
			if r.Result != "ok" {
				t.Errorf("WASI %s %s: %+v", r.Op, r.Path, r)
			}
		}
		if wres[2].Data != "from wasi!" {
			t.Errorf("WASI read back %q", wres[2].Data)
		}
		l.Check(t)

		// Every operation is logged with the step, the op, the grant and
		// the bytes; WASI's once per file, when it is closed.
		logs := e.logs.String()
		for _, want := range []string{`"op":"write"`, `"op":"append"`, `"op":"mkdir"`, `"op":"rename"`, `"op":"list"`} {
			found := false
			for _, line := range strings.Split(logs, "\n") {
				if strings.Contains(line, want) && strings.Contains(line, `"step_id":"`) && strings.Contains(line, `"grant":"/data"`) &&
					strings.Contains(line, `"bytes":`) {
					found = true
					break
				}
			}
			if !found {
				t.Errorf("no log record with %s, step_id, grant and bytes", want)
			}
		}
		if !strings.Contains(logs, `"via":"wasi"`) {
			t.Error("WASI operations were not logged")
		}
	})
}

// TestFS_noGrant: a step with no grant has no file system at all.
func TestFS_noGrant(t *testing.T) {
	eachEngine(t, func(t *testing.T, e *fsEngine) {
		r := e.runSDK(t, nil, []fsOp{{Op: "read", Path: "/data/in.txt"}})[0]
		if r.Result != "denied" || r.Code != "permission_denied" {
			t.Errorf("SDK read with no grant: %+v", r)
		}
		w := e.runWASI(t, nil, []fsOp{{Op: "read", Path: "/data/in.txt"}, {Op: "list", Path: "/"}})
		for _, r := range w {
			if r.Result == "ok" && len(r.Seen) > 0 {
				t.Errorf("WASI %s with no grant: %+v", r.Op, r)
			}
		}
	})
}

// TestFS_fstest checks sdk.FS, on the real host, against testing/fstest's
// rules for an fs.FS.
func TestFS_fstest(t *testing.T) {
	eachEngine(t, func(t *testing.T, e *fsEngine) {
		dir := t.TempDir()
		os.MkdirAll(filepath.Join(dir, "sub", "deeper"), 0o755)
		os.WriteFile(filepath.Join(dir, "a.txt"), []byte("aaa"), 0o644)
		os.WriteFile(filepath.Join(dir, "sub", "b.txt"), []byte("bbbb"), 0o600)
		os.WriteFile(filepath.Join(dir, "sub", "deeper", "c.txt"), nil, 0o644)
		r := e.runSDK(t, grantAt(dir, true), []fsOp{{Op: "fstest", Data: "data/a.txt,data/sub/b.txt,data/sub/deeper/c.txt"}})[0]
		if r.Result != "ok" {
			t.Fatalf("fstest: %s", r.Message)
		}
	})
}

// TestFS_nestedGrants grants /data and /data/cache from two host
// directories, and / from a third: each path reaches the grant with the
// longest guest path that holds it, through the host calls and through
// WASI, on every engine.
func TestFS_nestedGrants(t *testing.T) {
	eachEngine(t, func(t *testing.T, e *fsEngine) {
		root, data, cache := t.TempDir(), t.TempDir(), t.TempDir()
		grants := []fscap.Grant{
			{HostDir: root, GuestPath: "/", Name: "root"},
			{HostDir: data, GuestPath: "/data", Name: "data"},
			{HostDir: cache, GuestPath: "/data/cache", Name: "cache"},
		}
		ops := func(prefix string) []fsOp {
			return []fsOp{
				{Op: "write", Path: "/top-" + prefix + ".txt", Data: "r"},
				{Op: "write", Path: "/data/d-" + prefix + ".txt", Data: "d"},
				{Op: "write", Path: "/data/cache/c-" + prefix + ".txt", Data: "c"},
			}
		}
		for way, results := range map[string][]fsResult{
			"sdk":  e.runSDK(t, grants, ops("sdk")),
			"wasi": e.runWASI(t, grants, ops("wasi")),
		} {
			for _, r := range results {
				if r.Result != "ok" {
					t.Fatalf("%s: %+v", way, r)
				}
			}
			for dir, name := range map[string]string{root: "top-", data: "d-", cache: "c-"} {
				if _, err := os.Stat(filepath.Join(dir, name+way+".txt")); err != nil {
					t.Errorf("%s: %v", way, err)
				}
			}
		}
	})
}
