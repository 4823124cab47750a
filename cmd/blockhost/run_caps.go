package main

import (
	"github.com/urfave/cli/v2"

	"github.com/blockhost/blockhost/host/capability"
	"github.com/blockhost/blockhost/host/job"
)

// Each registered capability that takes grants on the command line
// (capability.FlagGrants), such as --allow-sql, gets its repeatable flag
// on every command with step options; its values go to the job layer,
// which adds them to the manifest's grant. HTTP and directories have
// flags of their own (run_http.go, run_fs.go).
func init() {
	for _, c := range capability.All() {
		fg, ok := c.(capability.FlagGrants)
		if !ok {
			continue
		}
		name, usage := fg.Flag()
		capName := c.Name()
		registerStepOption(stepOption{
			flags: []cli.Flag{&cli.StringSliceFlag{Name: name, Usage: usage}},
			apply: func(c *cli.Context, s *job.Settings) error {
				vals := c.StringSlice(name)
				if len(vals) == 0 {
					return nil
				}
				if _, err := fg.ParseFlags(vals, nil); err != nil {
					return usageErrorf("invalid --%s: %v", name, err)
				}
				if s.CapFlags == nil {
					s.CapFlags = map[string][]string{}
				}
				s.CapFlags[capName] = append(s.CapFlags[capName], vals...)
				return nil
			},
		})
	}
}
