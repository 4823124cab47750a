package sign

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"runtime"
)

// Key files are PEM: a private key is PKCS #8 ("PRIVATE KEY"), a public
// key PKIX ("PUBLIC KEY"), the forms `openssl genpkey -algorithm ed25519`
// and `openssl pkey -pubout` write, so keys can be made and inspected
// with standard tools.

// KeyID names a public key in messages and signature files:
// "ed25519:" and the first 16 hexadecimal digits of the SHA-256 of the
// key's 32 bytes.
func KeyID(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(pub)
	return "ed25519:" + hex.EncodeToString(sum[:8])
}

// GenerateKey writes a new key pair: the private key to privPath, mode
// 0600, and the public key to privPath + ".pub", mode 0644. It never
// overwrites a file. It returns the public key.
func GenerateKey(privPath string) (ed25519.PublicKey, error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, err
	}
	pubDER, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, err
	}
	pubPath := privPath + ".pub"
	if _, err := os.Lstat(pubPath); err == nil {
		return nil, &Error{Kind: ErrKey, Path: pubPath, Reason: "exists already; keygen never overwrites a key"}
	}
	if err := writeNew(privPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		return nil, err
	}
	if err := writeNew(pubPath, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER}), 0o644); err != nil {
		os.Remove(privPath) // a private key without its public half is of no use
		return nil, err
	}
	return pub, nil
}

// writeNew creates path with mode perm, failing if it exists.
func writeNew(path string, data []byte, perm fs.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		if errors.Is(err, fs.ErrExist) {
			return &Error{Kind: ErrKey, Path: path, Reason: "exists already; keygen never overwrites a key", Err: err}
		}
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		os.Remove(path)
		return err
	}
	return f.Close()
}

// ReadPrivateKey reads a private key file. On Unix the file must not be
// readable by group or others, as ssh insists for its keys: a signing key
// others can read signs for them too.
func ReadPrivateKey(path string) (ed25519.PrivateKey, error) {
	info, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if runtime.GOOS != "windows" && info.Mode().Perm()&0o077 != 0 {
		return nil, &Error{Kind: ErrKey, Path: path, Reason: fmt.Sprintf(
			"private key is readable by others (mode %04o); run chmod 600 %s", info.Mode().Perm(), path)}
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	der, err := pemBody(path, data, "PRIVATE KEY")
	if err != nil {
		return nil, err
	}
	k, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, &Error{Kind: ErrKey, Path: path, Reason: "not a PKCS #8 private key: " + err.Error(), Err: err}
	}
	priv, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, &Error{Kind: ErrKey, Path: path, Reason: fmt.Sprintf("a %T, not an Ed25519 key", k)}
	}
	return priv, nil
}

// ReadPublicKey reads a public key file.
func ReadPublicKey(path string) (ed25519.PublicKey, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	der, err := pemBody(path, data, "PUBLIC KEY")
	if err != nil {
		return nil, err
	}
	k, err := x509.ParsePKIXPublicKey(der)
	if err != nil {
		return nil, &Error{Kind: ErrKey, Path: path, Reason: "not a PKIX public key: " + err.Error(), Err: err}
	}
	pub, ok := k.(ed25519.PublicKey)
	if !ok {
		return nil, &Error{Kind: ErrKey, Path: path, Reason: fmt.Sprintf("a %T, not an Ed25519 key", k)}
	}
	return pub, nil
}

// pemBody returns the bytes of the one PEM block of type typ in data.
func pemBody(path string, data []byte, typ string) ([]byte, error) {
	b, rest := pem.Decode(data)
	switch {
	case b == nil:
		return nil, &Error{Kind: ErrKey, Path: path, Reason: "not a PEM file"}
	case b.Type != typ:
		return nil, &Error{Kind: ErrKey, Path: path, Reason: fmt.Sprintf("holds a %q, not a %q", b.Type, typ)}
	case len(b.Headers) > 0 || len(pemTrim(rest)) > 0:
		return nil, &Error{Kind: ErrKey, Path: path, Reason: "holds more than one key"}
	}
	return b.Bytes, nil
}

func pemTrim(b []byte) []byte {
	for len(b) > 0 && (b[0] == '\n' || b[0] == '\r' || b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	return b
}
