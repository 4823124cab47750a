package sign

import (
	"errors"
	"fmt"
)

// Kinds of failure. Every error Verify and VerifyManifest return for a
// manifest that was read matches exactly one of them with errors.Is; a
// manifest that cannot be read or parsed gives the os or manifest
// package's error, wrapped.
var (
	// ErrUnsigned: the manifest has no signature file beside it.
	ErrUnsigned = errors.New("sign: manifest is not signed")
	// ErrMalformed: the signature file is not a version 1 signature file
	// (docs/security.md).
	ErrMalformed = errors.New("sign: malformed signature file")
	// ErrUntrusted: the signature was made with a key that is not among
	// the trusted keys.
	ErrUntrusted = errors.New("sign: signed by an untrusted key")
	// ErrBadSignature: the signature does not verify under its key: the
	// signature file was altered.
	ErrBadSignature = errors.New("sign: signature does not verify")
	// ErrManifestChanged: the manifest's bytes are not the bytes signed.
	ErrManifestChanged = errors.New("sign: manifest changed since it was signed")
	// ErrModuleChanged: the module the manifest names is not the module
	// signed — another file, or a built-in block where a file was signed.
	ErrModuleChanged = errors.New("sign: module changed since it was signed")
	// ErrNoTrustedKeys: Verify was given no key to trust.
	ErrNoTrustedKeys = errors.New("sign: no trusted keys")
	// ErrModule: the module the manifest names cannot be read, or differs
	// from the manifest's sha256 pin; nothing is signed.
	ErrModule = errors.New("sign: bad module")
	// ErrKey: a key file is not a key this package reads, or a private
	// key file is readable by others.
	ErrKey = errors.New("sign: bad key")
)

// Error is a failure about one file: a manifest that did not verify, a
// module, a key file.
type Error struct {
	// Kind is the sentinel the error matches.
	Kind error
	// Path is the file concerned: the manifest, its signature file, the
	// module or the key file.
	Path string
	// Reason says what is wrong, for people.
	Reason string
	// Err is the underlying error, if any.
	Err error
}

func (e *Error) Error() string {
	return fmt.Sprintf("%s: %s", e.Path, e.Reason)
}

// Is reports whether target is e's kind.
func (e *Error) Is(target error) bool { return target == e.Kind }

// Unwrap returns the underlying error.
func (e *Error) Unwrap() error { return e.Err }
