package sign

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/blockhost/blockhost/host/manifest"
)

// reviewed is a temp dir with a manifest, its module and a key pair.
type reviewed struct {
	dir, manifest, module string
	priv                  ed25519.PrivateKey
	pub                   ed25519.PublicKey
}

func newReviewed(t *testing.T) *reviewed {
	t.Helper()
	dir := t.TempDir()
	r := &reviewed{dir: dir, manifest: filepath.Join(dir, "fetch.hcl"), module: filepath.Join(dir, "fetch.wasm")}
	write(t, r.module, "\x00asm\x01\x00\x00\x00 reviewed")
	write(t, r.manifest, "block \"fetch\" {\n  module = \"fetch.wasm\"\n}\n")
	keyPath := filepath.Join(dir, "reviewer.key")
	pub, err := GenerateKey(keyPath)
	if err != nil {
		t.Fatal(err)
	}
	if r.priv, err = ReadPrivateKey(keyPath); err != nil {
		t.Fatal(err)
	}
	r.pub = pub
	return r
}

func write(t *testing.T, path, data string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

func otherKey(t *testing.T) (ed25519.PublicKey, ed25519.PrivateKey) {
	pub, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	return pub, priv
}

// TestVerify: allowed/denied pairs for each way a reviewed manifest can
// stop being the reviewed one.
func TestVerify(t *testing.T) {
	otherPub, otherPriv := otherKey(t)
	tests := []struct {
		name   string
		change func(t *testing.T, r *reviewed)
		keys   func(r *reviewed) []ed25519.PublicKey
		kind   error // nil: verifies
	}{
		{"as signed", nil, nil, nil},
		{"one of several trusted keys", nil, func(r *reviewed) []ed25519.PublicKey { return []ed25519.PublicKey{otherPub, r.pub} }, nil},
		{"no trusted keys", nil, func(*reviewed) []ed25519.PublicKey { return nil }, ErrNoTrustedKeys},
		{"untrusted key", nil, func(*reviewed) []ed25519.PublicKey { return []ed25519.PublicKey{otherPub} }, ErrUntrusted},
		{"unsigned", func(t *testing.T, r *reviewed) { os.Remove(SignaturePath(r.manifest)) }, nil, ErrUnsigned},
		{"manifest changed", func(t *testing.T, r *reviewed) {
			write(t, r.manifest, "block \"fetch\" {\n  module = \"fetch.wasm\"\n  args = [\"x\"]\n}\n")
		}, nil, ErrManifestChanged},
		{"module swapped", func(t *testing.T, r *reviewed) { write(t, r.module, "\x00asm\x01\x00\x00\x00 another") }, nil, ErrModuleChanged},
		{"module removed, a built-in of its name would run", func(t *testing.T, r *reviewed) { os.Remove(r.module) }, nil, ErrModuleChanged},
		{"signature file edited to name another module", func(t *testing.T, r *reviewed) {
			sig := readFile(t, SignaturePath(r.manifest))
			i := strings.Index(sig, "module: sha256:")
			write(t, SignaturePath(r.manifest), sig[:i+15]+strings.Repeat("0", 64)+sig[i+15+64:])
		}, nil, ErrBadSignature},
		{"signature re-made by another key", func(t *testing.T, r *reviewed) {
			if _, err := SignManifest(r.manifest, otherPriv); err != nil {
				t.Fatal(err)
			}
		}, nil, ErrUntrusted},
		{"garbage", func(t *testing.T, r *reviewed) { write(t, SignaturePath(r.manifest), "hello\n") }, nil, ErrMalformed},
		{"version 2", func(t *testing.T, r *reviewed) {
			sig := readFile(t, SignaturePath(r.manifest))
			write(t, SignaturePath(r.manifest), strings.Replace(sig, "v1", "v2", 1))
		}, nil, ErrMalformed},
		{"an extra line", func(t *testing.T, r *reviewed) {
			write(t, SignaturePath(r.manifest), readFile(t, SignaturePath(r.manifest))+"comment: x\n")
		}, nil, ErrMalformed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := newReviewed(t)
			s, err := SignManifest(r.manifest, r.priv)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(s.Module, "sha256:") {
				t.Fatalf("module digest %q", s.Module)
			}
			if tc.change != nil {
				tc.change(t, r)
			}
			keys := []ed25519.PublicKey{r.pub}
			if tc.keys != nil {
				keys = tc.keys(r)
			}
			err = VerifyManifest(r.manifest, keys)
			if tc.kind == nil {
				if err != nil {
					t.Fatalf("VerifyManifest: %v", err)
				}
				return
			}
			var e *Error
			if !errors.Is(err, tc.kind) || !errors.As(err, &e) {
				t.Fatalf("VerifyManifest = %v; want %v", err, tc.kind)
			}
		})
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestSignManifest_builtin: a module attribute that names no file is a
// built-in block, signed by name; a file of that name appearing later is
// another module.
func TestSignManifest_builtin(t *testing.T) {
	r := newReviewed(t)
	write(t, r.manifest, "block \"req\" {\n  module = \"http.request\"\n}\n")
	s, err := SignManifest(r.manifest, r.priv)
	if err != nil || s.Module != "builtin:http.request" {
		t.Fatalf("SignManifest = %+v, %v", s, err)
	}
	if err := VerifyManifest(r.manifest, []ed25519.PublicKey{r.pub}); err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(r.dir, "http.request"), "\x00asm\x01\x00\x00\x00")
	if err := VerifyManifest(r.manifest, []ed25519.PublicKey{r.pub}); !errors.Is(err, ErrModuleChanged) {
		t.Fatalf("a file shadowing the built-in: %v", err)
	}
}

// TestSignManifest_refuses: nothing is signed for a manifest that does not
// parse or whose module differs from its pin.
func TestSignManifest_refuses(t *testing.T) {
	r := newReviewed(t)
	write(t, r.manifest, "block \"fetch\" {\n  module = \"fetch.wasm\"\n  sha256 = \""+strings.Repeat("ab", 32)+"\"\n}\n")
	if _, err := SignManifest(r.manifest, r.priv); !errors.Is(err, ErrModule) {
		t.Errorf("pin differs from the module: %v", err)
	}
	digest, err := ModuleDigest(&manifest.Manifest{Module: r.module})
	if err != nil {
		t.Fatal(err)
	}
	write(t, r.manifest, "block \"fetch\" {\n  module = \"fetch.wasm\"\n  sha256 = \""+strings.TrimPrefix(digest, "sha256:")+"\"\n}\n")
	if _, err := SignManifest(r.manifest, r.priv); err != nil {
		t.Errorf("pin equal to the module: %v", err)
	}
	write(t, r.manifest, "block \"fetch\" {\n")
	if _, err := SignManifest(r.manifest, r.priv); !errors.Is(err, manifest.ErrInvalid) {
		t.Errorf("a manifest that does not parse: %v", err)
	}
	if _, err := os.Stat(SignaturePath(r.manifest)); err != nil {
		t.Errorf("the signature of the pinned manifest: %v", err)
	}
}

func TestKeys(t *testing.T) {
	dir := t.TempDir()
	keyPath := filepath.Join(dir, "k")
	pub, err := GenerateKey(keyPath)
	if err != nil {
		t.Fatal(err)
	}
	info, err := os.Stat(keyPath)
	if err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("private key mode %v, %v; want 0600", info.Mode().Perm(), err)
	}
	got, err := ReadPublicKey(keyPath + ".pub")
	if err != nil || !bytes.Equal(got, pub) {
		t.Fatalf("ReadPublicKey = %x, %v; want %x", got, err, pub)
	}
	if _, err := GenerateKey(keyPath); !errors.Is(err, ErrKey) {
		t.Errorf("GenerateKey over an existing key: %v", err)
	}
	if _, err := ReadPublicKey(keyPath); !errors.Is(err, ErrKey) {
		t.Errorf("a private key read as a public key: %v", err)
	}
	if _, err := ReadPrivateKey(keyPath + ".pub"); !errors.Is(err, ErrKey) && !errors.Is(err, fs.ErrPermission) {
		t.Errorf("a public key read as a private key: %v", err)
	}
	if runtime.GOOS != "windows" {
		if err := os.Chmod(keyPath, 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := ReadPrivateKey(keyPath); !errors.Is(err, ErrKey) {
			t.Errorf("a private key others can read: %v", err)
		}
	}
	if id := KeyID(pub); !strings.HasPrefix(id, "ed25519:") || len(id) != len("ed25519:")+16 {
		t.Errorf("KeyID %q", id)
	}
}

func FuzzParseSignature(f *testing.F) {
	pub, priv, _ := ed25519.GenerateKey(nil)
	s := &Signature{PublicKey: pub, ManifestSHA256: strings.Repeat("0", 64), Module: "builtin:x"}
	s.Sig = ed25519.Sign(priv, s.payload())
	f.Add(s.Marshal())
	f.Add([]byte("blockhost-signature: v1\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := ParseSignature("f.sig", data)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v is not ErrMalformed", err)
			}
			return
		}
		if !bytes.Equal(s.Marshal(), data) {
			t.Fatalf("a parsed signature file does not marshal to its bytes:\n%q\n%q", data, s.Marshal())
		}
	})
}
