package main

import (
	"errors"
	"os"
	"path/filepath"

	"github.com/urfave/cli/v2"

	"github.com/blockhost/blockhost/host/fscap"
)

// --allow-dir adds directory grants to a run, after the manifest's; a flag
// for a guest path the manifest also grants replaces the manifest's grant.
func init() {
	registerRunOption(runOption{
		flags: []cli.Flag{
			&cli.StringSliceFlag{
				Name: "allow-dir",
				Usage: "grant a host directory: `HOST[:GUEST][:ro|rw]`, such as ./data:/data:rw " +
					"(repeatable; GUEST defaults to /BASENAME, the mode to ro; see docs/capabilities.md)",
			},
		},
		apply: applyAllowDir,
	})
}

func applyAllowDir(c *cli.Context, spec *runSpec) error {
	var grants []fscap.Grant
	var flagGrants []fscap.Grant
	for _, s := range c.StringSlice("allow-dir") {
		g, err := fscap.ParseDirSpec(s)
		if err != nil {
			return usageErrorf("invalid --allow-dir %q: %v", s, err)
		}
		if err := checkHostDir(g.HostDir); err != nil {
			return usageErrorf("invalid --allow-dir %q: %v", s, err)
		}
		flagGrants = append(flagGrants, g)
	}
	if spec.manifest != nil {
	manifestGrants:
		for _, g := range spec.manifest.FS {
			for _, f := range flagGrants {
				if f.GuestPath == g.GuestPath {
					continue manifestGrants
				}
			}
			abs, err := filepath.Abs(g.HostDir)
			if err != nil {
				return usageErrorf("%s: dir %q: %v", spec.manifest.Path, g.Name, err)
			}
			g.HostDir = abs
			if err := checkHostDir(abs); err != nil {
				return usageErrorf("%s: dir %q: %v", spec.manifest.Path, g.Name, err)
			}
			grants = append(grants, g)
		}
	}
	grants = append(grants, flagGrants...)
	if err := fscap.ValidateGrants(grants); err != nil {
		return usageErrorf("directory grants: %v", err)
	}
	spec.grants.FS = grants
	return nil
}

// checkHostDir fails unless dir is an existing directory, so that a typo
// is a usage error rather than every step's failure.
func checkHostDir(dir string) error {
	info, err := os.Stat(dir)
	if err != nil {
		return err
	}
	if !info.IsDir() {
		return &os.PathError{Op: "grant", Path: dir, Err: errNotDir}
	}
	return nil
}

var errNotDir = errors.New("not a directory")
