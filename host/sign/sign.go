package sign

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/blockhost/blockhost/host/manifest"
)

// Version is the signature file format this package writes and reads.
const Version = "v1"

// maxSigFile caps the signature file read; a v1 file is under 400 bytes.
const maxSigFile = 4096

// Signature is a parsed signature file.
//
// A version 1 signature file is five lines of text, each "name: value"
// and ending in "\n", in this order and nothing else:
//
//	blockhost-signature: v1
//	key: ed25519:<the 32-byte public key, standard base64>
//	manifest-sha256: <SHA-256 of the manifest file's bytes, 64 lower-case hex digits>
//	module: sha256:<64 hex digits> | builtin:<name>
//	signature: <the 64-byte Ed25519 signature, standard base64>
//
// The signature is Ed25519 (RFC 8032, pure, no pre-hash) over the first
// four lines exactly as written, their newlines included: the format
// version, the key, the manifest's digest and the module's digest are all
// signed.
type Signature struct {
	// PublicKey is the key that made the signature.
	PublicKey ed25519.PublicKey
	// ManifestSHA256 is the signed manifest's digest, hex.
	ManifestSHA256 string
	// Module is the signed module's digest: "sha256:HEX" for a module
	// file, "builtin:NAME" for a built-in block (see ModuleDigest).
	Module string
	// Sig is the Ed25519 signature.
	Sig []byte
}

// KeyID names the signature's key (see KeyID).
func (s *Signature) KeyID() string { return KeyID(s.PublicKey) }

// payload is what is signed: the first four lines of the file.
func (s *Signature) payload() []byte {
	return fmt.Appendf(nil, "blockhost-signature: %s\nkey: ed25519:%s\nmanifest-sha256: %s\nmodule: %s\n",
		Version, base64.StdEncoding.EncodeToString(s.PublicKey), s.ManifestSHA256, s.Module)
}

// Marshal returns the signature file's bytes.
func (s *Signature) Marshal() []byte {
	return fmt.Appendf(s.payload(), "signature: %s\n", base64.StdEncoding.EncodeToString(s.Sig))
}

// ParseSignature reads a version 1 signature file, strictly: any other
// line, order, version or encoding is ErrMalformed. path names the file
// in errors.
func ParseSignature(path string, data []byte) (*Signature, error) {
	bad := func(format string, args ...any) (*Signature, error) {
		return nil, &Error{Kind: ErrMalformed, Path: path, Reason: fmt.Sprintf(format, args...)}
	}
	lines := strings.Split(string(data), "\n")
	if len(lines) != 6 || lines[5] != "" {
		return bad("want the 5 lines of a %s signature file, each ending in a newline", Version)
	}
	field := func(i int, name string) (string, bool) {
		v, ok := strings.CutPrefix(lines[i], name+": ")
		return v, ok
	}
	if v, ok := field(0, "blockhost-signature"); !ok || v != Version {
		return bad("line 1 is %q; want \"blockhost-signature: %s\" (a newer blockhost may read it)", lines[0], Version)
	}
	s := &Signature{}
	key, ok := field(1, "key")
	k, err := base64.StdEncoding.Strict().DecodeString(strings.TrimPrefix(key, "ed25519:"))
	if !ok || !strings.HasPrefix(key, "ed25519:") || err != nil || len(k) != ed25519.PublicKeySize {
		return bad("line 2 is not \"key: ed25519:\" and a base64 Ed25519 public key")
	}
	s.PublicKey = k
	if s.ManifestSHA256, ok = field(2, "manifest-sha256"); !ok || !isHexDigest(s.ManifestSHA256) {
		return bad("line 3 is not \"manifest-sha256: \" and 64 lower-case hex digits")
	}
	if s.Module, ok = field(3, "module"); !ok || !validModuleDigest(s.Module) {
		return bad("line 4 is not \"module: sha256:HEX\" or \"module: builtin:NAME\"")
	}
	sig, ok := field(4, "signature")
	if s.Sig, err = base64.StdEncoding.Strict().DecodeString(sig); !ok || err != nil || len(s.Sig) != ed25519.SignatureSize {
		return bad("line 5 is not \"signature: \" and a base64 Ed25519 signature")
	}
	return s, nil
}

func isHexDigest(s string) bool {
	return len(s) == 64 && strings.Trim(s, "0123456789abcdef") == ""
}

func validModuleDigest(s string) bool {
	if h, ok := strings.CutPrefix(s, "sha256:"); ok {
		return isHexDigest(h)
	}
	name, ok := strings.CutPrefix(s, "builtin:")
	return ok && name != "" && !strings.ContainsAny(name, "/\\ \n")
}

// SignaturePath is where a manifest's signature lives: beside it, with
// ".sig" added to its name (fetch.hcl → fetch.hcl.sig).
func SignaturePath(manifestPath string) string { return manifestPath + ".sig" }

// ModuleDigest is how a signature names the module a manifest runs:
// "sha256:HEX", the digest of the file at m.Module, when that file
// exists; else "builtin:NAME", the built-in block named by the module
// attribute, when it names no file. This is the choice the run path makes
// (a file wins over a built-in of the same name), so a signature binds
// what will run. A built-in block has no digest of its own: its code is
// part of the blockhost binary, which the signature does not cover.
func ModuleDigest(m *manifest.Manifest) (string, error) {
	f, err := os.Open(m.Module)
	if errors.Is(err, fs.ErrNotExist) {
		name := m.ModuleName // the module attribute as written
		if name == "" {
			name = filepath.Base(m.Module)
		}
		if name == "" || name == "." || name == string(filepath.Separator) {
			return "", &Error{Kind: ErrModule, Path: m.Module, Reason: "no such module", Err: err}
		}
		return "builtin:" + name, nil
	}
	if err != nil {
		return "", &Error{Kind: ErrModule, Path: m.Module, Reason: "cannot read the module: " + err.Error(), Err: err}
	}
	defer f.Close()
	if info, err := f.Stat(); err != nil || !info.Mode().IsRegular() {
		return "", &Error{Kind: ErrModule, Path: m.Module, Reason: "the module is not a regular file"}
	}
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", &Error{Kind: ErrModule, Path: m.Module, Reason: "cannot read the module: " + err.Error(), Err: err}
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil)), nil
}

// readManifest reads and parses the manifest once, so the bytes hashed
// are the bytes parsed.
func readManifest(path string) (*manifest.Manifest, string, error) {
	src, err := os.ReadFile(path)
	if err != nil {
		return nil, "", fmt.Errorf("manifest: %w", err)
	}
	m, err := manifest.Parse(src, path)
	if err != nil {
		return nil, "", err
	}
	sum := sha256.Sum256(src)
	return m, hex.EncodeToString(sum[:]), nil
}

// moduleOf returns the module digest of m, checked against its pin.
func moduleOf(m *manifest.Manifest) (string, error) {
	digest, err := ModuleDigest(m)
	if err != nil {
		return "", err
	}
	if m.SHA256 != "" && digest != "sha256:"+m.SHA256 {
		return "", &Error{Kind: ErrModule, Path: m.Path, Reason: fmt.Sprintf(
			"the manifest pins module sha256:%s but %s is %s", m.SHA256, m.Module, digest)}
	}
	return digest, nil
}

// SignManifest signs the manifest at path, and the module it names, with
// key, and writes the signature file beside it (SignaturePath),
// replacing an earlier one. A manifest that does not parse, a module that
// cannot be read or differs from the manifest's sha256 pin is refused.
func SignManifest(path string, key ed25519.PrivateKey) (*Signature, error) {
	m, sum, err := readManifest(path)
	if err != nil {
		return nil, err
	}
	module, err := moduleOf(m)
	if err != nil {
		return nil, err
	}
	s := &Signature{PublicKey: key.Public().(ed25519.PublicKey), ManifestSHA256: sum, Module: module}
	s.Sig = ed25519.Sign(key, s.payload())
	// Write beside and rename, so a reader never sees half a signature.
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".sig-*")
	if err != nil {
		return nil, err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(s.Marshal()); err != nil {
		tmp.Close()
		return nil, err
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return nil, err
	}
	if err := tmp.Close(); err != nil {
		return nil, err
	}
	return s, os.Rename(tmp.Name(), SignaturePath(path))
}

// Verified is a manifest that verified.
type Verified struct {
	// Manifest is the parsed manifest, from the bytes that were verified.
	Manifest *manifest.Manifest
	// Signature is its signature.
	Signature *Signature
}

// Verify checks the manifest at path against its signature file: made by
// one of trusted, over these manifest bytes and the module the manifest
// names now. The checks run in this order, and the first that fails
// gives the error: a signature file exists (ErrUnsigned) and is well
// formed (ErrMalformed); its key is trusted (ErrUntrusted); the signature
// verifies (ErrBadSignature); the manifest's digest (ErrManifestChanged)
// and the module's (ErrModuleChanged) are those signed.
//
// The module is hashed here; a caller that then loads it must check that
// the bytes it loads have Signature.Module as their digest, or a module
// swapped in between would run.
func Verify(path string, trusted []ed25519.PublicKey) (*Verified, error) {
	if len(trusted) == 0 {
		return nil, &Error{Kind: ErrNoTrustedKeys, Path: path, Reason: "no trusted key to verify the signature with"}
	}
	sigPath := SignaturePath(path)
	f, err := os.Open(sigPath)
	if errors.Is(err, fs.ErrNotExist) {
		if _, serr := os.Stat(path); serr != nil {
			return nil, fmt.Errorf("manifest: %w", serr)
		}
		return nil, &Error{Kind: ErrUnsigned, Path: path, Reason: "not signed: no " + filepath.Base(sigPath) + " beside it", Err: err}
	}
	if err != nil {
		return nil, err
	}
	data, err := io.ReadAll(io.LimitReader(f, maxSigFile+1))
	f.Close()
	if err != nil {
		return nil, err
	}
	if len(data) > maxSigFile {
		return nil, &Error{Kind: ErrMalformed, Path: sigPath, Reason: "larger than any signature file"}
	}
	s, err := ParseSignature(sigPath, data)
	if err != nil {
		return nil, err
	}
	isTrusted := false
	for _, k := range trusted {
		if bytes.Equal(k, s.PublicKey) {
			isTrusted = true
			break
		}
	}
	if !isTrusted {
		return nil, &Error{Kind: ErrUntrusted, Path: path, Reason: "signed by key " + s.KeyID() + ", which is not a trusted key"}
	}
	if !ed25519.Verify(s.PublicKey, s.payload(), s.Sig) {
		return nil, &Error{Kind: ErrBadSignature, Path: sigPath, Reason: "the signature does not verify under key " + s.KeyID() + ": the signature file was altered"}
	}
	m, sum, err := readManifest(path)
	if err != nil {
		return nil, err
	}
	if sum != s.ManifestSHA256 {
		return nil, &Error{Kind: ErrManifestChanged, Path: path, Reason: fmt.Sprintf(
			"the manifest changed since it was signed (signed sha256:%s, now sha256:%s)", s.ManifestSHA256, sum)}
	}
	module, err := ModuleDigest(m)
	if err != nil {
		return nil, err
	}
	if module != s.Module {
		return nil, &Error{Kind: ErrModuleChanged, Path: m.Module, Reason: fmt.Sprintf(
			"the module changed since the manifest was signed (signed %s, now %s)", s.Module, module)}
	}
	return &Verified{Manifest: m, Signature: s}, nil
}

// VerifyManifest is Verify for a caller that needs only the verdict: nil
// when the manifest at path verifies under one of trusted, else an error
// matching one of the kinds Verify documents.
func VerifyManifest(path string, trusted []ed25519.PublicKey) error {
	_, err := Verify(path, trusted)
	return err
}
