package main

import (
	"strings"

	"github.com/urfave/cli/v2"
)

// Extism plugins (docs/extism.md): --func names the export a step calls,
// --config sets the plugin's config, as the extism CLI's flags do.
func init() {
	registerRunOption(runOption{
		flags: []cli.Flag{
			&cli.StringFlag{Name: "func", Usage: "the function of an Extism plugin to call, such as count_vowels"},
			&cli.StringSliceFlag{Name: "config", Usage: "an Extism plugin's config `KEY=VALUE` (repeatable)"},
		},
		apply: applyExtism,
	})
}

func applyExtism(c *cli.Context, spec *runSpec) error {
	if c.IsSet("func") {
		fn := c.String("func")
		if fn == "" {
			return usageErrorf("invalid --func: empty; name the plugin function to call")
		}
		spec.function = fn
	}
	if kvs := c.StringSlice("config"); len(kvs) > 0 {
		merged := map[string]string{}
		for k, v := range spec.config {
			merged[k] = v
		}
		for _, kv := range kvs {
			k, v, ok := strings.Cut(kv, "=")
			if !ok || k == "" {
				return usageErrorf("invalid --config %q: want KEY=VALUE", kv)
			}
			merged[k] = v
		}
		spec.config = merged
	}
	return nil
}
