// Package fsattack is the shared ammunition of the filesystem confinement
// tests: a directory layout with a granted directory, canary files around
// it and symbolic links planted to lead out of it, the traversal payloads
// to throw at it, and a check that nothing outside the grant was read or
// changed. The fscap, host and CLI tests all use it, so every way into the
// file system faces the same attacks.
package fsattack

import (
	"crypto/rand"
	"encoding/hex"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// GuestPath is where the layout's grant is mounted in the guest.
const GuestPath = "/data"

// Layout is a temporary directory with a granted directory inside it.
//
//	Base/secret.txt              canary
//	Base/outside/file.txt        canary
//	Base/outside/etc/passwd      canary
//	Base/data/                   the grant
//	Base/data/in.txt             "inside"
//	Base/data/sub/file.txt       "inside-sub"
//	Base/data/...                links planted to lead out (see New)
type Layout struct {
	// Base is the temporary directory; Grant is the granted directory.
	Base, Grant string
	// Secret is the content of every canary, unique to the layout, so that
	// a test can look for it in whatever a block returned.
	Secret string
	before map[string]string
}

// Link is a symbolic link New plants in the grant: its name and target.
type Link struct{ Name, Target string }

// Links are the links New plants, relative to the grant. Absolute targets
// name the layout's own canaries, written as "$BASE/…".
var Links = []Link{
	{"link_etc", "/etc"},
	{"link_up", ".."},
	{"link_rel", "../secret.txt"},
	{"link_abs", "$BASE/secret.txt"},
	{"chain1", "chain2"},
	{"chain2", "chain3"},
	{"chain3", "../secret.txt"},
	{"sub/link_upup", "../.."},
	{"sub/link_out_rel", "../../outside"},
	{"loop1", "loop2"},
	{"loop2", "loop1"},
	{"link_outdir", "../outside"},
	{"link_outdir_abs", "$BASE/outside"},
	{"link_proc", "/proc/self/root$BASE/secret.txt"},
	{"dangling_out", "../created-through-link"},
	{"sub/dangling_abs", "$BASE/created-through-abs-link"},
	{"link_self", "."},
	{"link_sub_up", "sub/../.."},
	{"link_ok", "in.txt"},
}

// New builds a layout under t.TempDir().
func New(t testing.TB) *Layout {
	t.Helper()
	base := t.TempDir()
	var b [8]byte
	rand.Read(b[:])
	l := &Layout{Base: base, Grant: filepath.Join(base, "data"), Secret: "CANARY-" + hex.EncodeToString(b[:])}
	for _, d := range []string{"outside/etc", "data/sub"} {
		if err := os.MkdirAll(filepath.Join(base, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	files := map[string]string{
		"secret.txt":         l.Secret,
		"outside/file.txt":   l.Secret,
		"outside/etc/passwd": l.Secret,
		"data/in.txt":        "inside",
		"data/sub/file.txt":  "inside-sub",
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(base, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, ln := range Links {
		target := strings.ReplaceAll(ln.Target, "$BASE", base)
		if err := os.Symlink(target, filepath.Join(l.Grant, ln.Name)); err != nil {
			t.Fatal(err)
		}
	}
	l.before = l.outside(t)
	return l
}

// outside returns every file outside the grant: its path relative to Base
// and its content, or the target of a link.
func (l *Layout) outside(t testing.TB) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(l.Base, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == l.Grant {
			return filepath.SkipDir
		}
		rel, _ := filepath.Rel(l.Base, p)
		switch {
		case d.Type()&fs.ModeSymlink != 0:
			target, _ := os.Readlink(p)
			out[rel] = "link:" + target
		case d.Type().IsRegular():
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			out[rel] = string(b)
		case d.IsDir():
			out[rel+"/"] = "dir"
		default:
			out[rel] = "other:" + d.Type().String()
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// Check fails t if anything outside the grant was created, changed or
// removed since New.
func (l *Layout) Check(t testing.TB) {
	t.Helper()
	now := l.outside(t)
	for p, was := range l.before {
		if got, ok := now[p]; !ok {
			t.Errorf("outside the grant, %s was removed", p)
		} else if got != was {
			t.Errorf("outside the grant, %s changed: %q, was %q", p, got, was)
		}
	}
	for p := range now {
		if _, ok := l.before[p]; !ok {
			t.Errorf("outside the grant, %s appeared", p)
		}
	}
}

// Leaked reports whether b holds a canary's content.
func (l *Layout) Leaked(b []byte) bool { return strings.Contains(string(b), l.Secret) }

// Want is how the confinement must refuse a payload.
type Want int

// Outcomes.
const (
	// Denied: the path leads, or tries to lead, out of the grant.
	Denied Want = iota
	// Invalid: the path is not a valid name at all.
	Invalid
	// NotFound: the path is an odd but harmless name inside the grant that
	// does not exist; nothing is decoded, so nothing escapes.
	NotFound
)

func (w Want) String() string {
	return [...]string{"denied", "invalid", "not_found"}[w]
}

// Payload is a path a confined block tries, with the grant at GuestPath.
type Payload struct {
	Path string
	Want Want
	// Write is set when writing the path must be refused the same way; a
	// harmless name inside the grant would rightly be created, so such
	// payloads are only read.
	Write bool
}

// Payloads returns the traversal payloads: ".." in every position and
// form, absolute paths, encoded, doubled and look-alike forms, NUL and
// control bytes, over-long names, and every planted link.
func Payloads() []Payload {
	long := strings.Repeat("a", 256)
	deep := strings.Repeat("d/", 2100)
	return []Payload{
		// ".." in every position.
		{"/data/../secret.txt", Denied, true},
		{"/data/../../etc/passwd", Denied, false},
		{"/data/sub/../../secret.txt", Denied, true},
		{"/data/sub/../../../../../../../../etc/passwd", Denied, false},
		{"/data/./../secret.txt", Denied, true},
		{"/data//../secret.txt", Denied, true},
		{"/data/../data/../secret.txt", Denied, true},
		{"/data/..", Denied, true},
		{"/data/../", Denied, true},
		{"/data/sub/..", Denied, false},
		{"/data/../outside/file.txt", Denied, true},
		{"/data/in.txt/../../secret.txt", Denied, true},
		// Outside every grant.
		{"/etc/passwd", Denied, false},
		{"/secret.txt", Denied, true},
		{"/", Denied, false},
		{"//etc/passwd", Invalid, false},
		{"/dat/../secret.txt", Denied, true},
		{"/database/x", Denied, true},
		{"/DATA/in.txt", Denied, true},
		{"/proc/self/root/etc/passwd", Denied, false},
		// Not absolute, or not a path at all.
		{"../secret.txt", Invalid, true},
		{"data/../../secret.txt", Invalid, true},
		{"", Invalid, true},
		{".", Invalid, true},
		{"..", Invalid, true},
		{"file:///etc/passwd", Invalid, false},
		{"\\data\\..\\secret.txt", Invalid, true},
		// Encoded, doubled and look-alike forms: names, not traversals.
		{"/data/%2e%2e/secret.txt", NotFound, false},
		{"/data/%2e%2e%2fsecret.txt", NotFound, false},
		{"/data/..%2fsecret.txt", NotFound, false},
		{"/data/%252e%252e%252fsecret.txt", NotFound, false},
		{"/data/....//secret.txt", Invalid, true},
		{"/data/..../secret.txt", NotFound, false},
		{"/data/.../secret.txt", NotFound, false},
		{"/data/\u2024\u2024/secret.txt", NotFound, false},
		{"/data/\uff0e\uff0e/secret.txt", NotFound, false},
		{"/data/..\u2215secret.txt", NotFound, false},
		{"/data/..;/secret.txt", NotFound, false},
		{"/data/ ../secret.txt", NotFound, false},
		{"/data/.. /secret.txt", NotFound, false},
		{"/data/..\\secret.txt", Invalid, true},
		{"/data/..\\..\\secret.txt", Invalid, true},
		// NUL, control bytes, invalid UTF-8, overlong forms.
		{"/data/in.txt\x00.png", Invalid, true},
		{"/data/\x00/../secret.txt", Invalid, true},
		{"/data/%00/../secret.txt", Denied, true},
		{"/data/\n/../secret.txt", Invalid, true},
		{"/data/\x1b[2J", Invalid, true},
		{"/data/\xff\xfe/../secret.txt", Invalid, true},
		{"/data/\xc0\xae\xc0\xae/secret.txt", Invalid, true},
		{"/data/" + long, Invalid, true},
		{"/data/" + deep + "x", Invalid, true},
		// Links planted in the grant.
		{"/data/link_etc/passwd", Denied, false},
		{"/data/link_etc", Denied, false},
		{"/data/link_up/secret.txt", Denied, true},
		{"/data/link_up/outside/file.txt", Denied, true},
		{"/data/link_rel", Denied, true},
		{"/data/link_abs", Denied, true},
		{"/data/chain1", Denied, true},
		{"/data/sub/link_upup/secret.txt", Denied, true},
		{"/data/sub/link_out_rel/file.txt", Denied, true},
		{"/data/loop1", Invalid, false},
		{"/data/link_outdir/file.txt", Denied, true},
		{"/data/link_outdir/new.txt", Denied, true},
		{"/data/link_outdir_abs/file.txt", Denied, true},
		{"/data/link_proc", Denied, true},
		{"/data/dangling_out", Denied, true},
		{"/data/sub/dangling_abs", Denied, true},
		{"/data/link_self/../secret.txt", Denied, true},
		{"/data/link_sub_up/secret.txt", Denied, true},
	}
}
