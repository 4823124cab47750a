// Package sign signs block manifests and verifies them: a reviewer who
// approved a manifest, and the module it names, signs the pair with an
// Ed25519 key (crypto/ed25519), and a host that trusts the reviewer's
// public key runs only what verifies.
//
// The package guarantees that:
//
//   - a signature covers the manifest's exact bytes and the module's
//     digest (SHA-256 of the file, or the name of a built-in block), so
//     changing either — one byte of the manifest, a module copied over
//     the reviewed one — makes verification fail, with an error saying
//     which changed;
//   - a signature verifies only under a key the caller trusts: the key
//     named in the signature file is compared with the trusted keys, never
//     trusted for being there;
//   - the signature file format is versioned and read strictly (Signature
//     documents version 1); anything else is ErrMalformed, never guessed
//     at;
//   - private keys are written with mode 0600, never over an existing
//     file, and not read when others can read them.
//
// Key files are PEM, PKCS #8 and PKIX, as openssl writes them. The formats
// and the reviewer's commands (blockhost keygen, sign, verify) are in
// docs/security.md.
package sign
