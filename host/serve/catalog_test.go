package serve

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/blockhost/blockhost/host/job"
	"github.com/blockhost/blockhost/host/sign"
	"github.com/blockhost/blockhost/internal/testwasm"
)

// TestCatalog_manifestBlock serves a WebAssembly block from a manifest,
// pinned by digest, shows its grants and runs it.
func TestCatalog_manifestBlock(t *testing.T) {
	// A small ABI block that echoes its input: compiling it is quick even
	// under the race detector.
	wasm := testwasm.WAT(t, filepath.Join(testwasm.ModuleRoot(t), "host", "testdata", "echo.wat"))
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "hello.wasm"), wasm, 0o600); err != nil {
		t.Fatal(err)
	}
	manifest := `block "hello" {
  module = "hello.wasm"
  limits { timeout = "5s" }
  capabilities { env = { GREETING = "secret-value" } }
}`
	if err := os.WriteFile(filepath.Join(dir, "hello.hcl"), []byte(manifest), 0o600); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(wasm)
	conf := func(pin string) Config {
		base := testConfig(t, t.TempDir(), nil)
		src := testConf + `block "hello" {
  manifest = "hello.hcl"
  sha256 = "` + pin + `"
}`
		f, err := Parse([]byte(src), filepath.Join(dir, "serve.hcl"))
		if err != nil {
			t.Fatal(err)
		}
		return base.WithFile(f)
	}

	_, err := New(t.Context(), conf(strings.Repeat("0", 64)))
	var ce *ConfigError
	if !errors.As(err, &ce) || !errors.Is(err, job.ErrPinMismatch) {
		t.Fatalf("a module that does not match its pin: %v", err)
	}

	h := start(t, conf(hex.EncodeToString(sum[:])))
	r := h.do("GET", "/v1/blocks", tokAna, nil)
	if r.code != 200 {
		t.Fatalf("blocks: %d %s", r.code, r.body)
	}
	var hello map[string]any
	for _, b := range r.json(t)["blocks"].([]any) {
		if b := b.(map[string]any); b["name"] == "hello" {
			hello = b
		}
	}
	grants, _ := hello["grants"].(map[string]any)
	if hello["sha256"] != hex.EncodeToString(sum[:]) || hello["kind"] != "wasm" || hello["limits"].(map[string]any)["timeout"] != "5s" ||
		len(grants["env"].([]any)) != 1 || strings.Contains(string(r.body), "secret-value") {
		t.Fatalf("hello in the catalog: %v", hello)
	}
	res := h.do("POST", "/v1/steps?wait=20s", tokAna, map[string]any{"block": "hello", "input": map[string]any{"name": "ana"}}).json(t)
	if out, _ := res["output"].(map[string]any); res["status"] != "success" || out["name"] != "ana" {
		t.Fatalf("hello step: %v", res)
	}
}

// TestCatalog_trustedKeys: with trusted keys, the server starts only when
// every manifest of its catalog is signed by one of them, its module the
// one signed; an unsigned manifest, or one signed by another key, stops
// it at start.
func TestCatalog_trustedKeys(t *testing.T) {
	wasm := testwasm.WAT(t, filepath.Join(testwasm.ModuleRoot(t), "host", "testdata", "echo.wat"))
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "echo.wasm"), wasm, 0o600); err != nil {
		t.Fatal(err)
	}
	mf := filepath.Join(dir, "echo.hcl")
	if err := os.WriteFile(mf, []byte("block \"echo\" {\n  module = \"echo.wasm\"\n}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	trusted, trustedKey, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	_, other, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	conf := func() Config {
		base := testConfig(t, t.TempDir(), nil) // sets the tokens' variables Parse reads
		f, err := Parse([]byte(testConf+"block \"echo\" {\n  manifest = \"echo.hcl\"\n}\n"), filepath.Join(dir, "serve.hcl"))
		if err != nil {
			t.Fatal(err)
		}
		return base.WithFile(f).WithTrustedKeys([]ed25519.PublicKey{trusted})
	}

	var ce *ConfigError
	if _, err := New(t.Context(), conf()); !errors.As(err, &ce) || !errors.Is(err, sign.ErrUnsigned) {
		t.Fatalf("an unsigned manifest under a trusted key: %v", err)
	}
	if _, err := sign.SignManifest(mf, other); err != nil {
		t.Fatal(err)
	}
	if _, err := New(t.Context(), conf()); !errors.As(err, &ce) || !errors.Is(err, sign.ErrUntrusted) {
		t.Fatalf("a manifest signed by another key: %v", err)
	}
	if _, err := sign.SignManifest(mf, trustedKey); err != nil {
		t.Fatal(err)
	}
	h := start(t, conf())
	res := h.do("POST", "/v1/steps?wait=20s", tokAna, map[string]any{"block": "echo", "input": map[string]any{"name": "ana"}}).json(t)
	if res["status"] != "success" {
		t.Fatalf("a step of the signed manifest: %v", res)
	}
}
