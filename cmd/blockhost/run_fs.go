package main

import (
	"github.com/urfave/cli/v2"

	"github.com/blockhost/blockhost/host/fscap"
	"github.com/blockhost/blockhost/host/job"
)

// --allow-dir adds directory grants to every step of run and batch, after
// the manifest's; a flag for a guest path the manifest also grants
// replaces the manifest's grant.
func init() {
	registerStepOption(stepOption{
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

func applyAllowDir(c *cli.Context, s *job.Settings) error {
	for _, spec := range c.StringSlice("allow-dir") {
		g, err := fscap.ParseDirSpec(spec)
		if err != nil {
			return usageErrorf("invalid --allow-dir %q: %v", spec, err)
		}
		if err := job.CheckHostDir(g.HostDir); err != nil {
			return usageErrorf("invalid --allow-dir %q: %v", spec, err)
		}
		s.FS = append(s.FS, g)
	}
	if err := fscap.ValidateGrants(s.FS); err != nil {
		return usageErrorf("invalid --allow-dir: %v", err)
	}
	return nil
}
