package main

import (
	"github.com/urfave/cli/v2"

	"github.com/blockhost/blockhost/host/job"
)

// --extend-grants: the grant flags (--allow-http, --allow-dir, --env) add
// to a manifest's grants only when it is given; without it a step naming
// a manifest under a grant flag is refused (exit 2), so that a flag never
// silently widens a reviewed manifest (docs/security.md).
func init() {
	registerStepOption(stepOption{
		flags: []cli.Flag{
			&cli.BoolFlag{Name: "extend-grants",
				Usage: "let --allow-http, --allow-dir and --env add to a manifest's grants (refused without)"},
		},
		apply: func(c *cli.Context, s *job.Settings) error {
			s.ExtendGrants = c.Bool("extend-grants")
			return nil
		},
	})
}
