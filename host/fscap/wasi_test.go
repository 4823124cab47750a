package fscap_test

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/blockhost/blockhost/host/engine"
	"github.com/blockhost/blockhost/host/fscap"
	"github.com/blockhost/blockhost/internal/fsattack"
)

func dirFS(t *testing.T, s *fscap.Session) engine.DirFS {
	t.Helper()
	dirs := s.Dirs()
	if len(dirs) != 1 {
		t.Fatalf("%d dirs", len(dirs))
	}
	return dirs[0].FS
}

func wantErrno(t *testing.T, what string, err error, want syscall.Errno) {
	t.Helper()
	var errno syscall.Errno
	if !errors.As(err, &errno) || errno != want {
		t.Errorf("%s: %v (errno %d), want %v", what, err, errno, want)
	}
}

func TestDirFS_confinement(t *testing.T) {
	l := fsattack.New(t)
	s := open(t, context.Background(), fscap.Config{}, rw(l.Grant))
	fsys := dirFS(t, s)
	for _, p := range fsattack.Payloads() {
		rel, ok := strings.CutPrefix(p.Path, "/data/")
		if !ok {
			continue
		}
		if f, err := fsys.OpenFile(rel, engine.OpenRead, 0); err == nil {
			b, _ := io.ReadAll(readerOf(f))
			f.Close()
			if l.Leaked(b) {
				t.Errorf("open %q leaked a canary", rel)
			}
			if p.Want != fsattack.NotFound {
				t.Errorf("open %q succeeded", rel)
			}
		}
		if p.Write {
			if f, err := fsys.OpenFile(rel, engine.OpenWrite|engine.OpenCreate|engine.OpenTruncate, 0o644); err == nil {
				f.Write([]byte("pwned"))
				f.Close()
			}
		}
	}
	_, err := fsys.OpenFile("link_rel", engine.OpenRead, 0)
	wantErrno(t, "open link_rel", err, syscall.EPERM)
	_, err = fsys.Stat("link_up/secret.txt")
	wantErrno(t, "stat link_up/secret.txt", err, syscall.EPERM)
	wantErrno(t, "mkdir through a link", fsys.Mkdir("link_outdir/new", 0o755), syscall.EPERM)
	wantErrno(t, "rename out", fsys.Rename("in.txt", "link_up/in.txt"), syscall.EPERM)
	l.Check(t)
}

type fileReader struct{ f engine.DirFile }

func (r fileReader) Read(p []byte) (int, error) { return r.f.Read(p) }

func readerOf(f engine.DirFile) io.Reader { return fileReader{f} }

func TestDirFS_stagedWrite(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	l := fsattack.New(t)
	s := open(t, ctx, fscap.Config{}, rw(l.Grant))
	fsys := dirFS(t, s)
	f, err := fsys.OpenFile("in.txt", engine.OpenWrite|engine.OpenTruncate, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write([]byte("replaced")); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(l.Grant, "in.txt")); string(b) != "inside" {
		t.Fatalf("in.txt = %q before close", b)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(l.Grant, "in.txt")); string(b) != "replaced" {
		t.Fatalf("in.txt = %q after close", b)
	}
	// Cut short by the end of the step: discarded.
	f, err = fsys.OpenFile("in.txt", engine.OpenRead|engine.OpenWrite|engine.OpenTruncate, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.Write([]byte("half"))
	cancel()
	f.Close()
	if b, _ := os.ReadFile(filepath.Join(l.Grant, "in.txt")); string(b) != "replaced" {
		t.Fatalf("in.txt = %q after a cut write", b)
	}
	noTemps(t, l.Grant)
	l.Check(t)
}

func TestDirFS_readOnlyAndQuota(t *testing.T) {
	l := fsattack.New(t)
	g := rw(l.Grant)
	g.ReadOnly = true
	fsys := dirFS(t, open(t, context.Background(), fscap.Config{}, g))
	_, err := fsys.OpenFile("in.txt", engine.OpenWrite|engine.OpenTruncate, 0)
	wantErrno(t, "write under ro", err, syscall.EROFS)
	wantErrno(t, "mkdir under ro", fsys.Mkdir("d", 0o755), syscall.EROFS)
	wantErrno(t, "unlink under ro", fsys.Unlink("in.txt"), syscall.EROFS)

	l2 := fsattack.New(t)
	var hits atomic.Int32
	g2 := rw(l2.Grant)
	g2.Quota = fscap.Quota{WriteBytes: 100}
	fsys = dirFS(t, open(t, context.Background(), fscap.Config{OnQuota: func(error) { hits.Add(1) }}, g2))
	f, err := fsys.OpenFile("new.txt", engine.OpenWrite|engine.OpenCreate|engine.OpenTruncate, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, err = f.Write(make([]byte, 101))
	wantErrno(t, "write over the quota", err, syscall.EIO)
	f.Close()
	if _, err := os.Stat(filepath.Join(l2.Grant, "new.txt")); err == nil {
		t.Fatal("a write over the quota was committed")
	}
	if hits.Load() != 1 {
		t.Fatalf("OnQuota called %d times", hits.Load())
	}
	noTemps(t, l2.Grant)
}

func TestDirFS_readDir(t *testing.T) {
	l := fsattack.New(t)
	os.WriteFile(filepath.Join(l.Grant, ".blockhost-tmp-0123"), nil, 0o600)
	os.WriteFile(filepath.Join(l.Grant, "bad\x01name"), nil, 0o600)
	fsys := dirFS(t, open(t, context.Background(), fscap.Config{}, rw(l.Grant)))
	d, err := fsys.OpenFile(".", engine.OpenRead|engine.OpenDirectory, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	var names []string
	for {
		ents, err := d.ReadDir(3)
		for _, e := range ents {
			names = append(names, e.Name())
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	all := strings.Join(names, ",")
	if strings.Contains(all, "blockhost-tmp") || strings.Contains(all, "bad") || !strings.Contains(all, "in.txt") {
		t.Fatalf("listed %v", names)
	}
}
