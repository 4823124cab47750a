package main

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/blockhost/blockhost/abi"
)

// TestInspect: inspect shows the module's digest, kind, imports and the
// effective settings after flags — the same that run then uses — and
// refuses what run refuses, with exit 2, without running anything.
func TestInspect(t *testing.T) {
	dir := t.TempDir()
	echo, err := os.ReadFile(fixture(t, "echo"))
	if err != nil {
		t.Fatal(err)
	}
	module := filepath.Join(dir, "echo.wasm")
	if err := os.WriteFile(module, echo, 0o644); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(echo)
	digest := "sha256:" + hex.EncodeToString(sum[:])
	mf := filepath.Join(dir, "echo.hcl")
	src := fmt.Sprintf(`block "echo" {
  module = "echo.wasm"
  sha256 = %q
  limits {
    timeout = "4s"
  }
  retry {
    max_attempts = 2
  }
  capabilities {
    env = { GREETING = "secret-value" }
    http {
      grant "api" {
        host  = "api.example.com"
        paths = ["/v1/"]
      }
    }
  }
}
`, hex.EncodeToString(sum[:]))
	if err := os.WriteFile(mf, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	inspect := func(args ...string) (cliResult, inspection) {
		t.Helper()
		r := runCLI(t, "", append([]string{"--log-level", "off", "inspect", "--no-cache", "--json"}, args...)...)
		var v inspection
		if r.code == exitSuccess {
			if err := json.Unmarshal([]byte(r.stdout), &v); err != nil {
				t.Fatalf("%v: %v\n%s", args, err, r.stdout)
			}
		}
		return r, v
	}

	r, v := inspect(mf)
	if r.code != exitSuccess {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	if v.Digest != digest || v.Size != len(echo) || v.Kind != "abi" || v.ABIVersion != abi.Version || v.Pinned != digest {
		t.Errorf("module: %+v", v)
	}
	if !slices.Contains(v.Imports["core"], "blockhost.input_len") || len(v.Imports["http"]) != 0 || !slices.Contains(v.Exports, "_start") {
		t.Errorf("imports %v exports %v", v.Imports, v.Exports)
	}
	if !slices.Equal(v.Grants.Env, []string{"GREETING"}) || strings.Contains(r.stdout, "secret-value") ||
		len(v.Grants.HTTP) != 1 || !strings.Contains(v.Grants.HTTP[0], "https://api.example.com:443/v1/") {
		t.Errorf("grants %+v (the value of an env grant is never shown)", v.Grants)
	}
	if v.Limits.Timeout != "4s" || v.Limits.MemoryBytes != 64<<20 || v.Schedule.MaxAttempts != 2 {
		t.Errorf("manifest settings: %+v %+v", v.Limits, v.Schedule)
	}

	// Flags win, as they do for run.
	_, v = inspect("--timeout", "2s", "--max-attempts", "1", "--memory", "16MiB", mf)
	if v.Limits.Timeout != "2s" || v.Limits.MemoryBytes != 16<<20 || v.Schedule.MaxAttempts != 1 {
		t.Errorf("after flags: %+v %+v", v.Limits, v.Schedule)
	}
	// A grant flag on a manifest: refused as run refuses it, shown as an
	// extension with --extend-grants.
	flag := "GET https://example.org/"
	if r, _ := inspect("--allow-http", flag, mf); r.code != exitUsage || !strings.Contains(r.stderr, "--extend-grants") {
		t.Errorf("grant flag without --extend-grants: exit %d %s", r.code, r.stderr)
	}
	_, v = inspect("--extend-grants", "--allow-http", flag, mf)
	if len(v.Grants.HTTP) != 2 || len(v.Grants.Extended) != 1 || !strings.Contains(v.Grants.Extended[0], "example.org") {
		t.Errorf("extended grants: %+v", v.Grants)
	}

	// What inspect shows is what run runs.
	if rr := runCLI(t, "", "--log-level", "off", "run", "--no-cache", "--manifest", mf, "--input", "[1]"); rr.code != exitSuccess || rr.res.Module != digest {
		t.Errorf("run: exit %d module %q, want %s", rr.code, rr.res.Module, digest)
	}

	// Text.
	tr := runCLI(t, "", "--log-level", "off", "inspect", "--no-cache", mf)
	for _, want := range []string{"digest", digest, "pinned to " + digest, "input_len", "GREETING", "timeout 4s"} {
		if !strings.Contains(tr.stdout, want) {
			t.Errorf("text lacks %q:\n%s", want, tr.stdout)
		}
	}

	// Bad inputs: exit 2 and a message naming the problem.
	garbage := filepath.Join(dir, "garbage.wasm")
	if err := os.WriteFile(garbage, []byte("not wasm"), 0o644); err != nil {
		t.Fatal(err)
	}
	badManifest := filepath.Join(dir, "bad.hcl")
	if err := os.WriteFile(badManifest, []byte(`block "x" { modul = "x.wasm" }`), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{}, {filepath.Join(dir, "missing.wasm")}, {garbage}, {badManifest}} {
		r, _ := inspect(args...)
		if r.code != exitUsage || r.stdout != "" || r.stderr == "" {
			t.Errorf("inspect %v: exit %d stdout %q stderr %q", args, r.code, r.stdout, r.stderr)
		}
	}

	// The swapped module: refused, naming both digests.
	other, err := os.ReadFile(fixture(t, "wasiecho"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(module, other, 0o644); err != nil {
		t.Fatal(err)
	}
	osum := sha256.Sum256(other)
	r, _ = inspect(mf)
	if r.code != exitUsage || !strings.Contains(r.stderr, digest) || !strings.Contains(r.stderr, hex.EncodeToString(osum[:])) {
		t.Errorf("swapped module: exit %d %s", r.code, r.stderr)
	}
}

// TestInspect_sqlGrant: inspect lists the databases a step would be
// granted, with the DSN's password left out, in text and JSON.
func TestInspect_sqlGrant(t *testing.T) {
	allow := "orders=postgres:postgres://app:hunter2@127.0.0.1:5432/orders"
	for _, args := range [][]string{{"inspect"}, {"inspect", "--json"}} {
		r := runCLI(t, "", append(args, "--allow-sql", allow, "sql.query")...)
		if r.code != exitSuccess {
			t.Fatalf("%v: exit %d: %s", args, r.code, r.stderr)
		}
		if !strings.Contains(r.stdout, "orders=postgres:postgres://app@127.0.0.1:5432/orders:ro") {
			t.Errorf("%v: the SQL grant is not shown:\n%s", args, r.stdout)
		}
		if strings.Contains(r.stdout+r.stderr, "hunter2") {
			t.Errorf("%v: the DSN's password is shown:\n%s", args, r.stdout)
		}
	}
}
