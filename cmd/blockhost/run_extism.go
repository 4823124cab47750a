package main

import (
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/blockhost/blockhost/host/job"
)

// Extism plugins (docs/extism.md): --func names the export every step
// calls, --config sets the plugin's config, as the extism CLI's flags do.
func init() {
	registerStepOption(stepOption{
		flags: []cli.Flag{
			&cli.StringFlag{Name: "func", Usage: "the function of an Extism plugin to call, such as count_vowels"},
			&cli.StringSliceFlag{Name: "config", Usage: "an Extism plugin's config `KEY=VALUE` (repeatable)"},
		},
		apply:    applyExtism,
		commands: []string{"run", "batch", "inspect"},
	})
}

func applyExtism(c *cli.Context, s *job.Settings) error {
	if c.IsSet("func") {
		fn := c.String("func")
		if fn == "" {
			return usageErrorf("invalid --func: empty; name the plugin function to call")
		}
		s.Function = fn
	}
	if kvs := c.StringSlice("config"); len(kvs) > 0 {
		s.Config = map[string]string{}
		for _, kv := range kvs {
			k, v, ok := strings.Cut(kv, "=")
			if !ok || k == "" {
				return usageErrorf("invalid --config %q: want KEY=VALUE", kv)
			}
			s.Config[k] = v
		}
	}
	return nil
}
