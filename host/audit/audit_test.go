package audit

import (
	"context"
	"crypto/ed25519"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/blockhost/blockhost/host/manifest"
	"github.com/blockhost/blockhost/host/sign"
	"github.com/blockhost/blockhost/internal/testwasm"
)

// lintDir is a temp dir holding the fixture modules, a home folder and a
// manifest written per case.
type lintDir struct {
	dir, home string
	fetch     string // sha256 of fetch.wasm
}

func newLintDir(t *testing.T) *lintDir {
	t.Helper()
	d := &lintDir{dir: t.TempDir()}
	for _, name := range []string{"fetch", "pure"} {
		wasm := testwasm.WAT(t, filepath.Join("testdata", name+".wat"))
		if err := os.WriteFile(filepath.Join(d.dir, name+".wasm"), wasm, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	d.home = filepath.Join(d.dir, "home")
	if err := os.MkdirAll(filepath.Join(d.home, ".ssh"), 0o755); err != nil {
		t.Fatal(err)
	}
	digest, err := sign.ModuleDigest(&manifest.Manifest{Module: filepath.Join(d.dir, "fetch.wasm")})
	if err != nil {
		t.Fatal(err)
	}
	d.fetch = strings.TrimPrefix(digest, "sha256:")
	return d
}

func (d *lintDir) lint(t *testing.T, cfg Config, src string) []Finding {
	t.Helper()
	path := filepath.Join(d.dir, "m.hcl")
	src = strings.ReplaceAll(src, "PIN", d.fetch)
	src = strings.ReplaceAll(src, "HOME", d.home)
	if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	fs, err := LintFile(context.Background(), cfg.WithHome(d.home), path)
	if err != nil {
		t.Fatal(err)
	}
	return fs
}

func ids(fs []Finding) []string {
	out := make([]string, len(fs))
	for i, f := range fs {
		out[i] = f.ID
	}
	return out
}

// TestLintFile: each rule has a manifest that trips it and one that does
// not. Every case but the unpinned ones pins fetch.wasm, and none is
// signed, so BH402 is in every list.
func TestLintFile(t *testing.T) {
	d := newLintDir(t)
	block := func(module, body string) string {
		return "block \"b\" {\n  module = \"" + module + "\"\n  sha256 = \"PIN\"\n" + body + "}\n"
	}
	http := func(grant string) string {
		return block("fetch.wasm", "  capabilities {\n    http {\n      grant \"g\" {\n"+grant+"      }\n    }\n  }\n")
	}
	dir := func(host, mode string) string {
		return block("fetch.wasm", "  capabilities {\n    filesystem {\n      dir \"d\" {\n        host = \""+host+"\"\n        mode = \""+mode+"\"\n      }\n    }\n  }\n")
	}
	tests := []struct {
		name string
		src  string
		want []string
	}{
		{"clean", http("        host = \"api.example.com\"\n        paths = [\"/v1/\"]\n"), []string{"BH402"}},
		{"wildcard over com", http("        host = \"*.com\"\n        allow_broad = true\n"), []string{"BH100", "BH402"}},
		{"wildcard below a domain", http("        host = \"*.example.com\"\n"), []string{"BH101", "BH402"}},
		{"all addresses", http("        host = \"api.example.com\"\n        allow_ranges = [\"0.0.0.0/0\"]\n        allow_broad = true\n"), []string{"BH102", "BH402"}},
		{"metadata", http("        host = \"api.example.com\"\n        allow_ranges = [\"169.254.169.254/32\"]\n"), []string{"BH103", "BH402"}},
		{"private", http("        host = \"api.example.com\"\n        allow_ranges = [\"10.0.0.0/8\"]\n"), []string{"BH104", "BH402"}},
		{"loopback", http("        host = \"127.0.0.1\"\n        scheme = \"http\"\n        allow_ranges = [\"127.0.0.1/32\"]\n"), []string{"BH105", "BH402"}},
		{"plain http", http("        host = \"api.example.com\"\n        scheme = \"http\"\n"), []string{"BH107", "BH402"}},
		{"writes everywhere", http("        host = \"api.example.com\"\n        methods = [\"GET\", \"DELETE\"]\n"), []string{"BH109", "BH402"}},
		{"large limits", http("        host = \"api.example.com\"\n        paths = [\"/v1/\"]\n        max_response_body = \"1GiB\"\n"), []string{"BH500", "BH402"}},
		{"http unused", block("pure.wasm", "  capabilities {\n    http {\n      grant \"g\" {\n        host = \"api.example.com\"\n      }\n    }\n  }\n"), nil},
		{"root", dir("/", "ro"), []string{"BH200", "BH203", "BH402"}},
		{"home", dir("HOME", "rw"), []string{"BH201", "BH203", "BH402"}},
		{"ssh keys", dir("HOME/.ssh", "ro"), []string{"BH201", "BH203", "BH402"}},
		{"system", dir("/etc", "ro"), []string{"BH202", "BH203", "BH402"}},
		{"inside /etc", dir("/etc/ssl", "ro"), []string{"BH202", "BH203", "BH402"}},
		{"a project folder", dir("./data", "rw"), []string{"BH203", "BH402"}},
		{"env used", block("fetch.wasm", "  capabilities {\n    env = { A = \"1\" }\n  }\n"), []string{"BH402"}},
		{"env unused", block("pure.wasm", "  capabilities {\n    env = { A = \"1\" }\n  }\n"), []string{"BH300", "BH401", "BH402"}},
		{"unpinned", "block \"b\" {\n  module = \"fetch.wasm\"\n}\n", []string{"BH400", "BH402"}},
		{"pin mismatch", block("pure.wasm", ""), []string{"BH401", "BH402"}},
		{"memory", block("fetch.wasm", "  limits {\n    memory = \"2GiB\"\n  }\n"), []string{"BH402", "BH500"}},
		{"module missing", "block \"b\" {\n  module = \"nosuch/x.wasm\"\n}\n", []string{"BH400", "BH402"}},
		{"module not wasm", "block \"b\" {\n  module = \"m.hcl\"\n}\n", []string{"BH001", "BH400", "BH402"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fs := d.lint(t, NewConfig(), tc.src)
			got := ids(fs)
			slices.Sort(got)
			slices.Sort(tc.want)
			if tc.name == "http unused" {
				// pure.wasm does not match the pin: BH401 as well.
				tc.want = []string{"BH108", "BH401", "BH402"}
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("findings %q; want %q\n%v", got, tc.want, fs)
			}
		})
	}
}

// TestLintFile_signature: a manifest signed by a trusted key has no
// signature finding; by another key, or altered since, BH403.
func TestLintFile_signature(t *testing.T) {
	d := newLintDir(t)
	path := filepath.Join(d.dir, "m.hcl")
	src := "block \"b\" {\n  module = \"fetch.wasm\"\n  sha256 = \"" + d.fetch + "\"\n}\n"
	if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	pub, priv, _ := ed25519.GenerateKey(nil)
	other, _, _ := ed25519.GenerateKey(nil)
	if _, err := sign.SignManifest(path, priv); err != nil {
		t.Fatal(err)
	}
	lint := func(cfg Config) []string {
		fs, err := LintFile(context.Background(), cfg, path)
		if err != nil {
			t.Fatal(err)
		}
		return ids(fs)
	}
	if got := lint(NewConfig().WithTrustedKeys(pub).WithBuiltins(func(string) bool { return false })); len(got) != 0 {
		t.Errorf("signed by a trusted key: %q", got)
	}
	if got := lint(NewConfig()); len(got) != 0 {
		t.Errorf("signed, no trusted keys given: %q", got)
	}
	if got := lint(NewConfig().WithTrustedKeys(other)); !slices.Equal(got, []string{"BH403"}) {
		t.Errorf("signed by an untrusted key: %q", got)
	}
	if err := os.WriteFile(path, []byte(src+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got := lint(NewConfig()); !slices.Equal(got, []string{"BH403"}) {
		t.Errorf("changed since signing: %q", got)
	}
}

func TestLintFile_builtins(t *testing.T) {
	d := newLintDir(t)
	known := func(name string) bool { return name == "http.request" }
	for _, tc := range []struct {
		module string
		want   []string
	}{
		{"http.request", []string{"BH400", "BH402"}},
		{"htp.request", []string{"BH001", "BH400", "BH402"}},
	} {
		fs := d.lint(t, NewConfig().WithBuiltins(known), "block \"b\" {\n  module = \""+tc.module+"\"\n}\n")
		got := ids(fs)
		slices.Sort(got)
		if !slices.Equal(got, tc.want) {
			t.Errorf("module %s: %q; want %q", tc.module, got, tc.want)
		}
	}
}

func TestLintFile_badManifest(t *testing.T) {
	path := filepath.Join(t.TempDir(), "m.hcl")
	if _, err := LintFile(context.Background(), NewConfig(), path); err == nil {
		t.Error("a missing manifest gave no error")
	}
	os.WriteFile(path, []byte("block \"b\" {\n"), 0o644)
	if _, err := LintFile(context.Background(), NewConfig(), path); !errors.Is(err, manifest.ErrInvalid) {
		t.Errorf("an invalid manifest: %v", err)
	}
}

func TestRules_stableIDs(t *testing.T) {
	seen := map[string]bool{}
	for _, r := range Rules() {
		if seen[r.ID] || seen[r.Name] || !strings.HasPrefix(r.ID, "BH") || r.Summary == "" {
			t.Errorf("rule %+v: duplicate or incomplete", r)
		}
		seen[r.ID], seen[r.Name] = true, true
	}
}

func TestParseSeverity(t *testing.T) {
	for i, n := range []string{"info", "LOW", "Medium", "high"} {
		if s, err := ParseSeverity(n); err != nil || int(s) != i {
			t.Errorf("ParseSeverity(%q) = %v, %v", n, s, err)
		}
	}
	if _, err := ParseSeverity("critical"); !errors.Is(err, ErrSeverity) {
		t.Errorf("ParseSeverity(critical): %v", err)
	}
}
