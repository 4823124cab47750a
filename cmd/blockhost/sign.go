package main

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/blockhost/blockhost/host/job"
	"github.com/blockhost/blockhost/host/manifest"
	"github.com/blockhost/blockhost/host/sign"
	"github.com/blockhost/blockhost/plugins"
)

// keygen, sign and verify: a reviewer signs the manifest they approved,
// and the module it names; anyone holding the reviewer's public key checks
// that what they are about to run is what was approved (docs/security.md).

// --trusted-key on run and batch: every step's block must come from a
// manifest signed by one of these keys, and its module must be the one
// signed (host/job checks the bytes it loads).
func init() {
	registerStepOption(stepOption{
		flags: []cli.Flag{
			&cli.StringSliceFlag{Name: "trusted-key", Usage: "run only manifests signed by this public key `FILE` (repeatable; see docs/security.md)"},
		},
		apply: func(c *cli.Context, s *job.Settings) error {
			paths := c.StringSlice("trusted-key")
			if len(paths) == 0 {
				return nil
			}
			keys, err := trustedKeys(paths)
			if err != nil {
				return err
			}
			s.TrustedKeys = keys
			return nil
		},
	})
}

func keygenCommand() *cli.Command {
	return &cli.Command{
		Name:      "keygen",
		Usage:     "make an Ed25519 key pair for signing manifests",
		ArgsUsage: "KEYFILE",
		Description: "Writes the private key to KEYFILE (mode 0600) and the public key to KEYFILE.pub,\n" +
			"both PEM (PKCS #8 and PKIX, as openssl writes them). Never overwrites a file.",
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return usageErrorf("keygen: want one KEYFILE (usage: blockhost keygen KEYFILE)")
			}
			path := c.Args().First()
			pub, err := sign.GenerateKey(path)
			if err != nil {
				return usageErrorf("keygen: %v", err)
			}
			fmt.Fprintf(streamsOf(c).out, "wrote %s (private, keep it secret) and %s.pub (public), key %s\n", path, path, sign.KeyID(pub))
			return nil
		},
	}
}

func signCommand() *cli.Command {
	return &cli.Command{
		Name:      "sign",
		Usage:     "sign a manifest and the module it names",
		ArgsUsage: "MANIFEST",
		Description: "Writes MANIFEST.sig: an Ed25519 signature over the manifest's bytes and the\n" +
			"module's SHA-256 (or a built-in block's name). Replaces an earlier signature.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "key", Aliases: []string{"k"}, Usage: "private key `FILE` (from blockhost keygen)", Required: true},
		},
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return usageErrorf("sign: want one MANIFEST (usage: blockhost sign --key KEYFILE MANIFEST)")
			}
			path := c.Args().First()
			key, err := sign.ReadPrivateKey(c.String("key"))
			if err != nil {
				return usageErrorf("sign: --key: %v", err)
			}
			if err := checkBuiltinModule(path); err != nil {
				return err
			}
			s, err := sign.SignManifest(path, key)
			if err != nil {
				return usageErrorf("sign: %v", err)
			}
			fmt.Fprintf(streamsOf(c).out, "signed %s: module %s, key %s; wrote %s\n", path, s.Module, s.KeyID(), sign.SignaturePath(path))
			return nil
		},
	}
}

// checkBuiltinModule refuses to sign a manifest whose module is neither a
// file nor a built-in block: most likely a typo in the module path, which
// a signature by name would make look approved.
func checkBuiltinModule(path string) error {
	m, err := manifest.ParseFile(path)
	if err != nil {
		return usageErrorf("sign: %v", err)
	}
	digest, err := sign.ModuleDigest(m)
	if err != nil {
		return usageErrorf("sign: %v", err)
	}
	if name, ok := strings.CutPrefix(digest, "builtin:"); ok {
		if _, found := plugins.Lookup(name); !found {
			return usageErrorf("sign: %s: module %s: no such file, and no built-in block of that name", path, m.Module)
		}
	}
	return nil
}

func verifyCommand() *cli.Command {
	return &cli.Command{
		Name:      "verify",
		Usage:     "check a manifest's signature against trusted keys",
		ArgsUsage: "MANIFEST",
		Description: "Exit 0 when MANIFEST.sig was made by a trusted key over these manifest bytes and the\n" +
			"module the manifest names now; 1 when it was not (unsigned, untrusted, altered, changed);\n" +
			"2 for bad usage (no trusted key, an unreadable key or manifest).",
		Flags: []cli.Flag{
			&cli.StringSliceFlag{Name: "trusted-key", Usage: "public key `FILE` to trust (repeatable; at least one)"},
		},
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return usageErrorf("verify: want one MANIFEST (usage: blockhost verify --trusted-key PUB MANIFEST)")
			}
			path := c.Args().First()
			keys, err := trustedKeys(c.StringSlice("trusted-key"))
			if err != nil {
				return err
			}
			v, err := sign.Verify(path, keys)
			if err != nil {
				for _, kind := range notVerified {
					if errors.Is(err, kind) {
						return &exitErr{code: exitError, msg: "not verified: " + err.Error()}
					}
				}
				// The manifest or the module cannot be read: nothing was
				// checked.
				return usageErrorf("verify: %v", err)
			}
			fmt.Fprintf(streamsOf(c).out, "verified: %s signed by %s, module %s\n", path, v.Signature.KeyID(), v.Signature.Module)
			return nil
		},
	}
}

// notVerified are the verdicts of a check that ran: exit 1.
var notVerified = []error{sign.ErrUnsigned, sign.ErrMalformed, sign.ErrUntrusted, sign.ErrBadSignature,
	sign.ErrManifestChanged, sign.ErrModuleChanged}

// trustedKeys reads --trusted-key files; none is a usage error, since a
// signature checked against no trusted key proves nothing.
func trustedKeys(paths []string) ([]ed25519.PublicKey, error) {
	if len(paths) == 0 {
		return nil, usageErrorf("verify: give at least one --trusted-key PUB: a signature by a key you do not trust proves nothing")
	}
	keys := make([]ed25519.PublicKey, 0, len(paths))
	for _, p := range paths {
		k, err := sign.ReadPublicKey(p)
		if err != nil {
			return nil, usageErrorf("invalid --trusted-key: %v", err)
		}
		keys = append(keys, k)
	}
	return keys, nil
}
