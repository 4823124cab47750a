package fscap_test

import (
	"context"
	"errors"
	"testing"

	"github.com/blockhost/blockhost/host/fscap"
	"github.com/blockhost/blockhost/internal/fsattack"
)

// FuzzSession_paths feeds arbitrary guest paths to every reading
// operation and to writes. Whatever the path, no canary is read, every
// error is an *fscap.Error of a known class, and nothing outside the grant
// changes.
func FuzzSession_paths(f *testing.F) {
	for _, p := range fsattack.Payloads() {
		f.Add(p.Path, "/data/x")
	}
	f.Add("/data/in.txt", "/data/sub/y")
	l := fsattack.New(f)
	ctx := context.Background()
	s, err := fscap.Open(ctx, []fscap.Grant{{HostDir: l.Grant, GuestPath: fsattack.GuestPath}}, fscap.Config{})
	if err != nil {
		f.Fatal(err)
	}
	defer s.Close()
	classes := []error{fscap.ErrNotFound, fscap.ErrPermission, fscap.ErrExist, fscap.ErrNoSpace, fscap.ErrQuota,
		fscap.ErrInvalidPath, fscap.ErrUnavailable, fscap.ErrTimeout, fscap.ErrIO}
	f.Fuzz(func(t *testing.T, p, q string) {
		check := func(err error) {
			if err == nil {
				return
			}
			var e *fscap.Error
			if !errors.As(err, &e) {
				t.Fatalf("%q: %T %v", p, err, err)
			}
			for _, c := range classes {
				if errors.Is(err, c) {
					return
				}
			}
			t.Fatalf("%q: %v has no class", p, err)
		}
		b, err := s.ReadFile(ctx, p, 1<<16)
		if l.Leaked(b) {
			t.Fatalf("%q leaked a canary", p)
		}
		check(err)
		_, err = s.Stat(ctx, p)
		check(err)
		_, err = s.ReadDir(ctx, p)
		check(err)
		check(s.WriteFile(ctx, p, []byte("fuzz"), 0))
		check(s.Rename(ctx, p, q))
		check(s.Mkdir(ctx, q))
		l.Check(t)
	})
}
