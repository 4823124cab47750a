package fscap_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/blockhost/blockhost/host/capability"
	"github.com/blockhost/blockhost/host/engine"
	"github.com/blockhost/blockhost/host/fscap"
)

// TestSession_audit: every operation and every refusal is one audit
// event with the operation, the guest path and the grant; a WASI open is
// one too, though the general log leaves it out, and the file's reads are
// one more when it is closed.
func TestSession_audit(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "a.txt"), []byte("abc"), 0o644)
	var evs []capability.Event
	s, err := fscap.Open(context.Background(), []fscap.Grant{{Name: "g", HostDir: dir, GuestPath: "/d", ReadOnly: true}},
		fscap.Config{Audit: func(e capability.Event) { evs = append(evs, e) }})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	f, err := s.Dirs()[0].FS.OpenFile("a.txt", engine.OpenRead, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	if _, err := s.Dirs()[0].FS.OpenFile("b.txt", engine.OpenWrite|engine.OpenCreate, 0o644); err == nil {
		t.Fatal("a write open under a read-only grant")
	}
	if _, err := s.Stat(context.Background(), "/d/a.txt"); err != nil {
		t.Fatal(err)
	}
	if len(evs) != 4 {
		t.Fatalf("events %+v", evs)
	}
	for i, w := range []struct {
		op, target string
		denied     bool
	}{{"open", "/d/a.txt", false}, {"read", "/d/a.txt", false}, {"open", "/d/b.txt", true}, {"stat", "/d/a.txt", false}} {
		if e := evs[i]; e.Capability != fscap.Name || e.Op != w.op || e.Target != w.target || e.Grant != "g" || e.Denied != w.denied {
			t.Errorf("event %d: %+v, want %+v", i, e, w)
		}
	}
}
