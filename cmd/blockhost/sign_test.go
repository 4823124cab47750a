package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestSignVerify is the reviewer's round trip through the CLI: keygen,
// sign, verify — and verify's verdict once the module is swapped, for an
// unsigned manifest, and under a key nobody trusts.
func TestSignVerify(t *testing.T) {
	dir := t.TempDir()
	wasm, err := os.ReadFile(fixture(t, "echo"))
	if err != nil {
		t.Fatal(err)
	}
	module := filepath.Join(dir, "echo.wasm")
	manifestPath := filepath.Join(dir, "echo.hcl")
	mustWrite(t, module, wasm)
	mustWrite(t, manifestPath, []byte("block \"echo\" {\n  module = \"echo.wasm\"\n}\n"))
	key, other := filepath.Join(dir, "reviewer.key"), filepath.Join(dir, "other.key")

	for _, k := range []string{key, other} {
		if r := runCLI(t, "", "keygen", k); r.code != exitSuccess || !strings.Contains(r.stdout, "ed25519:") {
			t.Fatalf("keygen: exit %d\n%s%s", r.code, r.stdout, r.stderr)
		}
	}
	if info, err := os.Stat(key); err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("private key: %v, %v", info, err)
	}
	if r := runCLI(t, "", "keygen", key); r.code != exitUsage {
		t.Errorf("keygen over an existing key: exit %d", r.code)
	}
	verify := func(keys ...string) cliResult {
		args := []string{"verify"}
		for _, k := range keys {
			args = append(args, "--trusted-key", k)
		}
		return runCLI(t, "", append(args, manifestPath)...)
	}
	if r := verify(key + ".pub"); r.code != exitError || !strings.Contains(r.stderr, "not verified") {
		t.Errorf("unsigned: exit %d %s", r.code, r.stderr)
	}
	if r := runCLI(t, "", "sign", "--key", key, manifestPath); r.code != exitSuccess || !strings.Contains(r.stdout, "sha256:") {
		t.Fatalf("sign: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if r := verify(key + ".pub"); r.code != exitSuccess || !strings.HasPrefix(r.stdout, "verified: ") {
		t.Fatalf("verify: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if r := verify(other + ".pub"); r.code != exitError {
		t.Errorf("untrusted key: exit %d %s", r.code, r.stderr)
	}
	if r := verify(); r.code != exitUsage {
		t.Errorf("no trusted key: exit %d %s", r.code, r.stderr)
	}
	mustWrite(t, module, append(wasm, 0, 0)) // a different module under the reviewed name
	if r := verify(key + ".pub"); r.code != exitError || !strings.Contains(r.stderr, "module changed") {
		t.Errorf("swapped module: exit %d %s", r.code, r.stderr)
	}
	mustWrite(t, manifestPath, []byte("block \"echo\" {\n  module = \"nosuch.wasm\"\n}\n"))
	if r := runCLI(t, "", "sign", "--key", key, manifestPath); r.code != exitUsage || !strings.Contains(r.stderr, "no built-in block") {
		t.Errorf("sign a manifest naming nothing: exit %d %s", r.code, r.stderr)
	}
}

func mustWrite(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestRun_trustedKey: with --trusted-key, run starts a block only from a
// manifest signed by that key over the module it loads — the swapped
// module, an unsigned manifest, another key's signature and a module
// named alone do not run.
func TestRun_trustedKey(t *testing.T) {
	dir := t.TempDir()
	wasm, err := os.ReadFile(fixture(t, "echo"))
	if err != nil {
		t.Fatal(err)
	}
	module, manifestPath := filepath.Join(dir, "echo.wasm"), filepath.Join(dir, "echo.hcl")
	mustWrite(t, module, wasm)
	mustWrite(t, manifestPath, []byte("block \"echo\" {\n  module = \"echo.wasm\"\n}\n"))
	key, other := filepath.Join(dir, "reviewer.key"), filepath.Join(dir, "other.key")
	for _, k := range []string{key, other} {
		if r := runCLI(t, "", "keygen", k); r.code != exitSuccess {
			t.Fatalf("keygen: %s", r.stderr)
		}
	}
	run := func(pub string, args ...string) cliResult {
		return runCLI(t, "", append([]string{"--log-level", "off", "run", "--no-cache", "--trusted-key", pub, "--input", "[1]"}, args...)...)
	}
	if r := run(key+".pub", "--manifest", manifestPath); r.code != exitUsage || r.stdout != "" {
		t.Errorf("unsigned: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if r := runCLI(t, "", "sign", "--key", key, manifestPath); r.code != exitSuccess {
		t.Fatalf("sign: %s", r.stderr)
	}
	if r := run(key+".pub", "--manifest", manifestPath); r.code != exitSuccess {
		t.Fatalf("signed: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if r := run(other+".pub", "--manifest", manifestPath); r.code != exitUsage || r.stdout != "" {
		t.Errorf("another key: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if r := run(key+".pub", module); r.code != exitUsage || r.stdout != "" {
		t.Errorf("a module named alone: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	mustWrite(t, module, append(wasm, 0, 5, 3, 'a', 'b', 'c', 'X')) // the same code and a custom section
	if r := run(key+".pub", "--manifest", manifestPath); r.code != exitUsage || r.stdout != "" || !strings.Contains(r.stderr, "module changed") {
		t.Errorf("swapped module: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if r := runCLI(t, "", "--log-level", "off", "run", "--no-cache", "--input", "[1]", "--manifest", manifestPath); r.code != exitSuccess {
		t.Errorf("the swapped module without --trusted-key: exit %d (the run path does not pin yet)\n%s", r.code, r.stderr)
	}
}
