package job

import (
	"fmt"
	"maps"

	"github.com/blockhost/blockhost/host"
)

// extism sets the function an Extism plugin's step calls and the plugin's
// config (docs/extism.md): the overrides' over the manifest's. It fails
// when the block cannot call the function: not exported, or given to a
// block that is not an Extism plugin or a WASI command, or missing for an
// Extism plugin.
func (s *Service) extism(l *loaded, step *host.Step) error {
	o := s.cfg.overrides
	step.Function = l.function
	if o.Function != "" {
		step.Function = o.Function
	}
	step.Config = l.config
	if len(o.Config) > 0 {
		step.Config = maps.Clone(l.config)
		if step.Config == nil {
			step.Config = map[string]string{}
		}
		maps.Copy(step.Config, o.Config)
	}
	if blk, ok := l.runner.(*host.Block); ok {
		return blk.CheckFunction(step.Function)
	}
	if step.Function != "" {
		return fmt.Errorf("a built-in block has no function %q to call", step.Function)
	}
	return nil
}
