package manifest

import (
	"sort"

	"github.com/hashicorp/hcl/v2"
)

// An Extism plugin's settings (docs/extism.md):
//
//	block "count-vowels" {
//	  module   = "count_vowels.wasm"
//	  function = "count_vowels"
//	  config {
//	    vowels = "aeiouy"
//	  }
//	}
//
// function names the export each step calls; config is the plugin's
// configuration, which it reads with config_get.
func (d *decoder) extism(content *hcl.BodyContent, m *Manifest) {
	if attr, ok := content.Attributes["function"]; ok {
		m.Function, _ = d.nonEmptyString(attr.Expr, "function", "function")
	}
	if blk := d.single(content.Blocks, "config"); blk != nil {
		m.Config = d.config(blk)
	}
}

func (d *decoder) config(blk *hcl.Block) map[string]string {
	attrs, diags := blk.Body.JustAttributes()
	d.diags = append(d.diags, diags...)
	names := make([]string, 0, len(attrs))
	for name := range attrs {
		names = append(names, name)
	}
	sort.Strings(names) // diagnostics in the file's order of names, stably
	config := make(map[string]string, len(attrs))
	for _, name := range names {
		if v, ok := d.string(attrs[name].Expr, "config value", "the value of config "+name); ok {
			config[name] = v
		}
	}
	return config
}
