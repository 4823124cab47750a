package main

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
)

const auditBroad = `block "a" {
  module = "http.request"
  capabilities {
    http {
      grant "all" {
        host         = "*.com"
        allow_broad  = true
      }
    }
  }
}
`

// TestAuditLint: --fail-on sets the exit code, --json gives the same
// findings as objects, and an invalid manifest is a usage error.
func TestAuditLint(t *testing.T) {
	dir := t.TempDir()
	broad, narrow := filepath.Join(dir, "broad.hcl"), filepath.Join(dir, "narrow.hcl")
	mustWrite(t, broad, []byte(auditBroad))
	mustWrite(t, narrow, []byte(strings.Replace(auditBroad, `"*.com"`, `"api.example.com"`, 1)))

	for _, tc := range []struct {
		args []string
		code int
	}{
		{[]string{broad}, exitError}, // BH100 is high; the default --fail-on is high
		{[]string{"--fail-on", "none", broad}, exitSuccess},
		{[]string{narrow}, exitSuccess}, // medium findings only: no pin, no signature
		{[]string{"--fail-on", "medium", narrow}, exitError},
		{[]string{"--fail-on", "critical", narrow}, exitUsage},
		{[]string{filepath.Join(dir, "nosuch.hcl")}, exitUsage},
	} {
		r := runCLI(t, "", append([]string{"audit", "lint"}, tc.args...)...)
		if r.code != tc.code {
			t.Errorf("audit lint %q: exit %d; want %d\n%s%s", tc.args, r.code, tc.code, r.stdout, r.stderr)
		}
	}
	r := runCLI(t, "", "audit", "lint", "--json", "--fail-on", "none", broad, narrow)
	var findings []struct{ ID, Severity, Manifest string }
	if err := json.Unmarshal([]byte(r.stdout), &findings); err != nil || r.code != exitSuccess {
		t.Fatalf("--json: exit %d, %v\n%s", r.code, err, r.stdout)
	}
	if len(findings) != 5 || findings[0].ID != "BH100" || findings[0].Severity != "high" || findings[0].Manifest != broad {
		t.Errorf("findings %+v", findings)
	}
}

// TestAuditDiff: what a change grants is marked +, and --exit-code fails
// on it; a change that only takes away passes.
func TestAuditDiff(t *testing.T) {
	dir := t.TempDir()
	broad, narrow := filepath.Join(dir, "broad.hcl"), filepath.Join(dir, "narrow.hcl")
	mustWrite(t, broad, []byte(auditBroad))
	mustWrite(t, narrow, []byte(strings.Replace(auditBroad, `"*.com"`, `"api.example.com"`, 1)))

	r := runCLI(t, "", "audit", "diff", "--exit-code", narrow, broad)
	if r.code != exitError || !strings.HasPrefix(r.stdout, `+ http grant "all": host: api.example.com → *.com`) {
		t.Errorf("widening: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	r = runCLI(t, "", "audit", "diff", "--exit-code", broad, narrow)
	if r.code != exitSuccess || !strings.HasPrefix(r.stdout, `- http grant "all": host: *.com → api.example.com`) {
		t.Errorf("narrowing: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if r := runCLI(t, "", "audit", "diff", "--json", broad, broad); r.code != exitSuccess || strings.TrimSpace(r.stdout) != "[]" {
		t.Errorf("no change: exit %d %q", r.code, r.stdout)
	}
	if r := runCLI(t, "", "audit", "diff", broad); r.code != exitUsage {
		t.Errorf("one manifest: exit %d", r.code)
	}
}
