package fscap_test

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/blockhost/blockhost/host/engine"
	"github.com/blockhost/blockhost/host/fscap"
	"github.com/blockhost/blockhost/internal/fsattack"
)

// TestDirFS_guestLinks: a WASI guest creating links cannot make one that
// leads out — each target fsattack plants from outside is refused when the
// guest tries it — while links inside work, loops give ELOOP, and nothing
// outside the grant changes.
func TestDirFS_guestLinks(t *testing.T) {
	l := fsattack.New(t)
	fsys := dirFS(t, open(t, context.Background(), fscap.Config{}, rw(l.Grant)))
	for i, ln := range fsattack.Links {
		target := strings.ReplaceAll(ln.Target, "$BASE", l.Base)
		name := "g" + string(rune('a'+i))
		if strings.HasPrefix(ln.Name, "sub/") {
			name = "sub/" + name
		}
		err := fsys.Symlink(target, name)
		if err != nil {
			continue // refused at creation
		}
		// Made: following it must stay inside.
		if f, err := fsys.OpenFile(name, engine.OpenRead, 0); err == nil {
			b, _ := io.ReadAll(readerOf(f))
			f.Close()
			if l.Leaked(b) {
				t.Errorf("link %s -> %s leaked a canary", name, target)
			}
		}
		if f, err := fsys.OpenFile(name, engine.OpenWrite|engine.OpenCreate|engine.OpenTruncate, 0); err == nil {
			f.Write([]byte("pwned"))
			f.Close()
		}
	}
	for _, target := range []string{"/etc/passwd", "../secret.txt", "sub/../../secret.txt", l.Base + "/secret.txt"} {
		wantErrno(t, "symlink to "+target, fsys.Symlink(target, "out"), syscall.EPERM)
	}
	// Inside: made, read and followed.
	if err := fsys.Symlink("in.txt", "ok"); err != nil {
		t.Fatal(err)
	}
	if got, err := fsys.Readlink("ok"); err != nil || got != "in.txt" {
		t.Errorf("readlink: %q %v", got, err)
	}
	f, err := fsys.OpenFile("ok", engine.OpenRead, 0)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(readerOf(f))
	f.Close()
	if string(b) != "inside" {
		t.Errorf("through the link: %q", b)
	}
	if err := fsys.Symlink("selfloop", "selfloop"); err != nil {
		t.Fatal(err)
	}
	_, err = fsys.OpenFile("selfloop", engine.OpenRead, 0)
	wantErrno(t, "open a loop", err, syscall.ELOOP)
	// A hard link inside the grant, and times.
	if err := fsys.Link("in.txt", "hard"); err != nil {
		t.Fatal(err)
	}
	when := time.Unix(1_000_000_000, 0)
	if err := fsys.SetTimes("hard", &when, &when, true); err != nil {
		t.Fatal(err)
	}
	if info, err := os.Stat(filepath.Join(l.Grant, "in.txt")); err != nil || !info.ModTime().Equal(when) {
		t.Errorf("times through a hard link: %v %v", info, err)
	}
	l.Check(t)
}

// TestDirFS_linksReadOnlyAndQuota: links are writes (refused under a
// read-only grant) and count as files created.
func TestDirFS_linksReadOnlyAndQuota(t *testing.T) {
	l := fsattack.New(t)
	g := rw(l.Grant)
	g.ReadOnly = true
	fsys := dirFS(t, open(t, context.Background(), fscap.Config{}, g))
	wantErrno(t, "symlink under ro", fsys.Symlink("in.txt", "l"), syscall.EROFS)
	wantErrno(t, "link under ro", fsys.Link("in.txt", "l"), syscall.EROFS)
	now := time.Now()
	wantErrno(t, "set times under ro", fsys.SetTimes("in.txt", &now, &now, true), syscall.EROFS)

	l2 := fsattack.New(t)
	g2 := rw(l2.Grant)
	g2.Quota = fscap.Quota{Files: 1}
	fsys = dirFS(t, open(t, context.Background(), fscap.Config{}, g2))
	if err := fsys.Symlink("in.txt", "one"); err != nil {
		t.Fatal(err)
	}
	wantErrno(t, "a second link over a one-file quota", fsys.Link("in.txt", "two"), syscall.EIO)
}
