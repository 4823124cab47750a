package fscap_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/blockhost/blockhost/host/fscap"
	"github.com/blockhost/blockhost/internal/fsattack"
)

// open opens a session on grants and closes it with the test.
func open(t *testing.T, ctx context.Context, cfg fscap.Config, grants ...fscap.Grant) *fscap.Session {
	t.Helper()
	s, err := fscap.Open(ctx, grants, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

func rw(dir string) fscap.Grant {
	return fscap.Grant{HostDir: dir, GuestPath: fsattack.GuestPath}
}

func wantClass(t *testing.T, what string, err error, w fsattack.Want) {
	t.Helper()
	class := map[fsattack.Want]error{
		fsattack.Denied:   fscap.ErrPermission,
		fsattack.Invalid:  fscap.ErrInvalidPath,
		fsattack.NotFound: fscap.ErrNotFound,
	}[w]
	if !errors.Is(err, class) {
		t.Errorf("%s: got %v, want %v", what, err, class)
	}
	var e *fscap.Error
	if err != nil && !errors.As(err, &e) {
		t.Errorf("%s: %T is not an *fscap.Error", what, err)
	}
}

// TestSession_traversalPayloads throws every payload at every operation
// that takes a path, and checks each is refused as it should be and that
// nothing outside the grant was read or changed.
func TestSession_traversalPayloads(t *testing.T) {
	ctx := context.Background()
	payloads := fsattack.Payloads()
	if len(payloads) < 50 {
		t.Fatalf("only %d payloads", len(payloads))
	}
	l := fsattack.New(t)
	s := open(t, ctx, fscap.Config{}, rw(l.Grant))
	for _, p := range payloads {
		b, err := s.ReadFile(ctx, p.Path, 1<<20)
		if l.Leaked(b) {
			t.Errorf("read %q leaked a canary", p.Path)
		}
		wantClass(t, "read "+p.Path, err, p.Want)
		// "/" is the virtual directory above the grant.
		if info, err := s.Stat(ctx, p.Path); err == nil && p.Path != "/" {
			t.Errorf("stat %q = %v, want refused", p.Path, info.Name())
		}
		if p.Write {
			wantClass(t, "write "+p.Path, s.WriteFile(ctx, p.Path, []byte("pwned"), 0), p.Want)
			_, err := s.Append(ctx, p.Path, strings.NewReader("pwned"), 5)
			wantClass(t, "append "+p.Path, err, p.Want)
		}
	}
	l.Check(t)

	// Operations that change names get a fresh layout each, since a
	// payload that names a link inside the grant may rightly remove or
	// move the link itself.
	for name, fn := range map[string]func(s *fscap.Session, p string) error{
		"remove":   func(s *fscap.Session, p string) error { return s.Remove(ctx, p) },
		"mkdir":    func(s *fscap.Session, p string) error { return s.Mkdir(ctx, p) },
		"renameTo": func(s *fscap.Session, p string) error { return s.Rename(ctx, "/data/in.txt", p) },
		"renameFrom": func(s *fscap.Session, p string) error {
			return s.Rename(ctx, p, "/data/moved")
		},
		"list": func(s *fscap.Session, p string) error { _, err := s.ReadDir(ctx, p); return err },
	} {
		t.Run(name, func(t *testing.T) {
			l := fsattack.New(t)
			s := open(t, ctx, fscap.Config{}, rw(l.Grant))
			for _, p := range payloads {
				if err := fn(s, p.Path); err == nil && p.Want != fsattack.NotFound && p.Path != "/" {
					// Only a link inside the grant may be removed or moved.
					if !strings.HasPrefix(p.Path, "/data/") || strings.Contains(p.Path, "..") {
						t.Errorf("%s %q succeeded", name, p.Path)
					}
				}
			}
			l.Check(t)
		})
	}
}

func TestSession_allowed(t *testing.T) {
	ctx := context.Background()
	l := fsattack.New(t)
	s := open(t, ctx, fscap.Config{}, rw(l.Grant))
	for path, want := range map[string]string{"/data/in.txt": "inside", "/data/sub/file.txt": "inside-sub", "/data/link_ok": "inside"} {
		b, err := s.ReadFile(ctx, path, 1<<20)
		if err != nil || string(b) != want {
			t.Errorf("read %s = %q, %v; want %q", path, b, err, want)
		}
	}
	if err := s.Mkdir(ctx, "/data/new"); err != nil {
		t.Fatal(err)
	}
	if err := s.WriteFile(ctx, "/data/new/a.txt", []byte("hello"), 0); err != nil {
		t.Fatal(err)
	}
	if err := s.WriteFile(ctx, "/data/new/a.txt", []byte("again"), fscap.WriteExclusive); !errors.Is(err, fs.ErrExist) {
		t.Fatalf("exclusive write over a file: %v", err)
	}
	if _, err := s.Append(ctx, "/data/new/a.txt", strings.NewReader(", world"), -1); err != nil {
		t.Fatal(err)
	}
	if err := s.Rename(ctx, "/data/new/a.txt", "/data/b.txt"); err != nil {
		t.Fatal(err)
	}
	var got []byte
	if _, err := s.ReadAt(ctx, "/data/b.txt", 7, -1, func(p []byte) error { got = append(got, p...); return nil }); err != nil || string(got) != "world" {
		t.Fatalf("read at 7 = %q, %v", got, err)
	}
	ents, err := s.ReadDir(ctx, "/data")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	if !strings.Contains(strings.Join(names, ","), "b.txt,chain1") {
		t.Errorf("list = %v", names)
	}
	info, err := s.Stat(ctx, "/data/b.txt")
	if err != nil || info.Size() != 12 || info.Mode().Perm() != 0o644 {
		t.Fatalf("stat = %v, %v", info, err)
	}
	if err := s.Remove(ctx, "/data/b.txt"); err != nil {
		t.Fatal(err)
	}
	if err := s.Remove(ctx, "/data"); !errors.Is(err, fscap.ErrPermission) {
		t.Fatalf("remove the grant: %v", err)
	}
	l.Check(t)
}

func TestSession_readOnly(t *testing.T) {
	ctx := context.Background()
	l := fsattack.New(t)
	g := rw(l.Grant)
	g.ReadOnly = true
	s := open(t, ctx, fscap.Config{}, g)
	if b, err := s.ReadFile(ctx, "/data/in.txt", 100); err != nil || string(b) != "inside" {
		t.Fatalf("read under ro: %q %v", b, err)
	}
	for name, err := range map[string]error{
		"write":    s.WriteFile(ctx, "/data/in.txt", []byte("changed"), 0),
		"writeNew": s.WriteFile(ctx, "/data/new.txt", []byte("new"), 0),
		"append":   func() error { _, err := s.Append(ctx, "/data/in.txt", strings.NewReader("x"), 1); return err }(),
		"mkdir":    s.Mkdir(ctx, "/data/d"),
		"remove":   s.Remove(ctx, "/data/in.txt"),
		"rename":   s.Rename(ctx, "/data/in.txt", "/data/x.txt"),
	} {
		if !errors.Is(err, fscap.ErrPermission) || !errors.Is(err, fs.ErrPermission) {
			t.Errorf("%s under a read-only grant: %v, want permission denied", name, err)
		}
		if c := fscap.Classify(err); c.Code.Name() != "permission_denied" || c.Retryable {
			t.Errorf("%s: class %+v", name, c)
		}
	}
	if b, _ := os.ReadFile(filepath.Join(l.Grant, "in.txt")); string(b) != "inside" {
		t.Fatalf("in.txt changed to %q", b)
	}
	for _, p := range []string{"new.txt", "d", "x.txt"} {
		if _, err := os.Lstat(filepath.Join(l.Grant, p)); err == nil {
			t.Errorf("%s was created under a read-only grant", p)
		}
	}
}

// noTemps waits until no staged write is left in dir.
func noTemps(t *testing.T, dir string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		var left []string
		ents, _ := os.ReadDir(dir)
		for _, e := range ents {
			if strings.HasPrefix(e.Name(), ".blockhost-tmp-") {
				left = append(left, e.Name())
			}
		}
		if len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("staged writes left behind: %v", left)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestSession_quota(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "old.txt"), []byte("old"), 0o600); err != nil {
		t.Fatal(err)
	}
	var quotaHits atomic.Int32
	g := fscap.Grant{HostDir: dir, GuestPath: "/q", Quota: fscap.Quota{WriteBytes: 4096, Files: 3, FileSize: 3000}}
	s := open(t, ctx, fscap.Config{OnQuota: func(error) { quotaHits.Add(1) }}, g)

	checkQuota := func(what string, err error) {
		t.Helper()
		if !errors.Is(err, fscap.ErrQuota) {
			t.Fatalf("%s: %v, want quota exceeded", what, err)
		}
		if c := fscap.Classify(err); c.Code.Name() != "quota_exceeded" || c.Result.String() != "limit" {
			t.Fatalf("%s: class %+v", what, c)
		}
	}
	// Known size: refused before anything is written.
	checkQuota("file size", s.WriteFile(ctx, "/q/big.txt", make([]byte, 3001), 0))
	checkQuota("replace too big", s.WriteFile(ctx, "/q/old.txt", make([]byte, 3001), 0))
	// Unknown size: refused while streaming; nothing is left behind.
	_, err := s.Write(ctx, "/q/stream.txt", io.LimitReader(zeros{}, 5000), -1, 0)
	checkQuota("streamed file size", err)
	if err := s.WriteFile(ctx, "/q/a.txt", make([]byte, 2000), 0); err != nil {
		t.Fatal(err)
	}
	checkQuota("bytes written", s.WriteFile(ctx, "/q/old.txt", make([]byte, 2500), 0))
	_, err = s.Append(ctx, "/q/a.txt", io.LimitReader(zeros{}, 2500), -1)
	checkQuota("append over the byte quota", err)
	if info, _ := os.Stat(filepath.Join(dir, "a.txt")); info.Size() != 2000 {
		t.Fatalf("a failed append left a.txt at %d bytes", info.Size())
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "old.txt")); string(b) != "old" {
		t.Fatalf("old.txt = %q", b)
	}
	for _, p := range []string{"big.txt", "stream.txt"} {
		if _, err := os.Lstat(filepath.Join(dir, p)); err == nil {
			t.Errorf("a refused write left %s", p)
		}
	}
	// Files: a.txt is one; two more fit.
	for _, p := range []string{"/q/d1", "/q/f2"} {
		var err error
		if strings.Contains(p, "d") {
			err = s.Mkdir(ctx, p)
		} else {
			err = s.WriteFile(ctx, p, nil, 0)
		}
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
	}
	checkQuota("files created", s.WriteFile(ctx, "/q/f4", nil, 0))
	checkQuota("directories created", s.Mkdir(ctx, "/q/d4"))
	if quotaHits.Load() == 0 {
		t.Error("OnQuota was never called")
	}
	noTemps(t, dir)
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) { clear(p); return len(p), nil }

// TestSession_fifoTimeout reads a FIFO that has no writer: the open blocks
// in the kernel, and the read must return timeout at its 200 ms operation
// timeout, with the stuck operation counted until it is released.
func TestSession_fifoTimeout(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
	g := fscap.Grant{HostDir: dir, GuestPath: "/p", Timeout: 200 * time.Millisecond}
	s := open(t, ctx, fscap.Config{}, g)
	before := fscap.Abandoned()
	total := fscap.AbandonedTotal()
	start := time.Now()
	_, err := s.ReadFile(ctx, "/p/fifo", 1<<20)
	took := time.Since(start)
	if !errors.Is(err, fscap.ErrTimeout) || !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read = %v, want a timeout", err)
	}
	if c := fscap.Classify(err); c.Result.String() != "unavailable" || !c.Retryable {
		t.Fatalf("class %+v", c)
	}
	if took < 190*time.Millisecond || took > 5*time.Second {
		t.Fatalf("read returned after %v, want about 200ms", took)
	}
	if got := fscap.Abandoned(); got != before+1 {
		t.Fatalf("Abandoned() = %d, want %d", got, before+1)
	}
	if fscap.AbandonedTotal() != total+1 {
		t.Fatalf("AbandonedTotal() did not count the operation")
	}
	// A writer releases the stuck open; the operation then cleans up and
	// is no longer counted.
	w, err := os.OpenFile(fifo, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	w.Close()
	deadline := time.Now().Add(5 * time.Second)
	for fscap.Abandoned() != before {
		if time.Now().After(deadline) {
			t.Fatalf("Abandoned() stays at %d", fscap.Abandoned())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestSession_cancelLargeWrite cancels a 1 GiB write: it must return
// within 100 ms and leave the destination as it was.
func TestSession_cancelLargeWrite(t *testing.T) {
	dir := t.TempDir()
	dst := filepath.Join(dir, "big.bin")
	if err := os.WriteFile(dst, []byte("old content"), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancelCause(context.Background())
	g := fscap.Grant{HostDir: dir, GuestPath: "/big", Timeout: time.Minute,
		Quota: fscap.Quota{WriteBytes: 2 << 30, FileSize: 2 << 30}}
	s := open(t, ctx, fscap.Config{}, g)
	var cancelled atomic.Int64
	src := &countingReader{r: io.LimitReader(zeros{}, 1<<30)}
	go func() {
		for src.n.Load() < 32<<20 {
			time.Sleep(time.Millisecond)
		}
		cancelled.Store(time.Now().UnixNano())
		cancel(errors.New("test cancelled the step"))
	}()
	_, err := s.Write(ctx, "/big/big.bin", src, 1<<30, 0)
	after := time.Since(time.Unix(0, cancelled.Load()))
	if !errors.Is(err, fscap.ErrStepEnded) {
		t.Fatalf("write = %v, want step ended", err)
	}
	if c := fscap.Classify(err); c.Result.String() != "cancelled" {
		t.Fatalf("class %+v, want cancelled", c)
	}
	if after > 5*time.Second {
		t.Fatalf("write returned %v after the cancellation", after)
	}
	if src.n.Load() >= 1<<30 {
		t.Fatal("the whole GiB was written")
	}
	if b, _ := os.ReadFile(dst); string(b) != "old content" {
		t.Fatalf("destination is %d bytes, want its old content", len(b))
	}
	noTemps(t, dir)
}

type countingReader struct {
	r io.Reader
	n atomic.Int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}

// TestSession_failedWriteKeepsOld: a write whose data source fails midway
// leaves the old file in place.
func TestSession_failedWriteKeepsOld(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "f"), []byte("old"), 0o640); err != nil {
		t.Fatal(err)
	}
	s := open(t, ctx, fscap.Config{}, fscap.Grant{HostDir: dir, GuestPath: "/w"})
	src := io.MultiReader(io.LimitReader(zeros{}, 3<<20), &failingReader{})
	if _, err := s.Write(ctx, "/w/f", src, -1, 0); err == nil {
		t.Fatal("write succeeded")
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "f")); string(b) != "old" {
		t.Fatalf("f = %d bytes", len(b))
	}
	// A write that completes keeps the old file's permission bits.
	if err := s.WriteFile(ctx, "/w/f", []byte("new"), 0); err != nil {
		t.Fatal(err)
	}
	if info, _ := os.Stat(filepath.Join(dir, "f")); info.Mode().Perm() != 0o640 {
		t.Fatalf("mode %v", info.Mode())
	}
	noTemps(t, dir)
}

type failingReader struct{}

func (failingReader) Read([]byte) (int, error) { return 0, errors.New("source broke") }

// TestSession_linkSwappedDuringStep swaps a directory of the grant for a
// link to outside it, over and over, while reads and writes go through it.
func TestSession_linkSwappedDuringStep(t *testing.T) {
	ctx := context.Background()
	l := fsattack.New(t)
	s := open(t, ctx, fscap.Config{}, rw(l.Grant))
	sub := filepath.Join(l.Grant, "sub")
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				os.Remove(sub)
				os.Mkdir(sub, 0o755)
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
		}
	}()
	denied := 0
	for i := 0; i < 2000; i++ {
		b, err := s.ReadFile(ctx, "/data/sub/file.txt", 1<<10)
		if l.Leaked(b) {
			t.Fatal("a read through the swapped link leaked a canary")
		}
		if errors.Is(err, fscap.ErrPermission) {
			denied++
		}
		s.WriteFile(ctx, "/data/sub/file.txt", []byte("overwritten"), 0)
		s.WriteFile(ctx, "/data/sub/new.txt", []byte("new"), 0)
	}
	close(stop)
	wg.Wait()
	if denied == 0 {
		t.Error("the swap never showed: no read was denied")
	}
	l.Check(t)
}

// TestSession_grantReplaced replaces the granted directory itself with a
// link elsewhere: the session keeps the directory it opened.
func TestSession_grantReplaced(t *testing.T) {
	ctx := context.Background()
	l := fsattack.New(t)
	s := open(t, ctx, fscap.Config{}, rw(l.Grant))
	moved := filepath.Join(l.Base, "moved-grant")
	if err := os.Rename(l.Grant, moved); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(l.Base, "outside"), l.Grant); err != nil {
		t.Fatal(err)
	}
	b, err := s.ReadFile(ctx, "/data/in.txt", 100)
	if err != nil || string(b) != "inside" {
		t.Fatalf("read after the grant was replaced = %q, %v", b, err)
	}
	if b, _ := s.ReadFile(ctx, "/data/file.txt", 100); l.Leaked(b) {
		t.Fatal("read the link's target")
	}
	if err := s.WriteFile(ctx, "/data/file.txt", []byte("x"), 0); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(moved, "file.txt")); string(b) != "x" {
		t.Fatal("the write did not go to the directory the step opened")
	}
	if b, _ := os.ReadFile(filepath.Join(l.Base, "outside", "file.txt")); !l.Leaked(b) {
		t.Fatal("the file outside changed")
	}
}

func TestSession_stepEnded(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
	l := fsattack.New(t)
	s := open(t, ctx, fscap.Config{}, rw(l.Grant))
	cancel()
	_, err := s.ReadFile(ctx, "/data/in.txt", 100)
	if !errors.Is(err, fscap.ErrStepEnded) || fscap.Classify(err).Result.String() != "cancelled" {
		t.Fatalf("read after the step = %v", err)
	}
	dctx, dcancel := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
	defer dcancel()
	s2 := open(t, context.Background(), fscap.Config{}, rw(l.Grant))
	_, err = s2.ReadFile(dctx, "/data/in.txt", 100)
	if c := fscap.Classify(err); c.Result.String() != "timeout" || c.Code.Name() != "cancelled_by_timeout" {
		t.Fatalf("read past the deadline: %v %+v", err, c)
	}
}

func TestSession_logs(t *testing.T) {
	var buf bytes.Buffer
	logger := newJSONLogger(&buf)
	ctx := context.Background()
	l := fsattack.New(t)
	s := open(t, ctx, fscap.Config{Logger: logger.With("step_id", "s-1")}, rw(l.Grant))
	s.ReadFile(ctx, "/data/in.txt", 100)
	s.WriteFile(ctx, "/data/x", []byte("12345"), 0)
	s.ReadFile(ctx, "/data/../secret.txt", 100)
	out := buf.String()
	for _, want := range []string{
		`"@message":"file operation","@module":"fs",`,
		`"bytes":6,"grant":"/data","ms":`,
		`"op":"read","path":"/data/in.txt","step_id":"s-1"`,
		`"bytes":5`,
		`"@message":"file operation denied"`,
		`"path":"/data/../secret.txt"`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %s:\n%s", want, out)
		}
	}
}

func TestSession_virtualDirectories(t *testing.T) {
	ctx := context.Background()
	s := open(t, ctx, fscap.Config{},
		fscap.Grant{HostDir: t.TempDir(), GuestPath: "/srv/data"},
		fscap.Grant{HostDir: t.TempDir(), GuestPath: "/tmp"})
	names := func(p string) string {
		ents, err := s.ReadDir(ctx, p)
		if err != nil {
			t.Fatalf("list %s: %v", p, err)
		}
		var out []string
		for _, e := range ents {
			if !e.IsDir() {
				t.Errorf("%s/%s is not a directory", p, e.Name())
			}
			out = append(out, e.Name())
		}
		return strings.Join(out, ",")
	}
	if got := names("/"); got != "srv,tmp" {
		t.Errorf("list / = %s", got)
	}
	if got := names("/srv"); got != "data" {
		t.Errorf("list /srv = %s", got)
	}
	if info, err := s.Stat(ctx, "/srv"); err != nil || !info.IsDir() || info.Mode().Perm() != 0o555 {
		t.Errorf("stat /srv = %v, %v", info, err)
	}
	// Virtual directories are read-only, and nothing else is above the
	// grants.
	if err := s.Mkdir(ctx, "/srv/other"); !errors.Is(err, fscap.ErrPermission) {
		t.Errorf("mkdir /srv/other: %v", err)
	}
	if _, err := s.Stat(ctx, "/etc"); !errors.Is(err, fscap.ErrPermission) {
		t.Errorf("stat /etc: %v", err)
	}
}
