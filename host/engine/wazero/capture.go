package wazero

import (
	"github.com/tetratelabs/wazero/api"

	"github.com/blockhost/blockhost/host/engine"
)

// instance is what RunConfig.Capture sees of a wazero instance.
type instance struct{ m api.Module }

var _ engine.Instance = instance{}

func (i instance) Memory() []byte {
	mem := i.m.ExportedMemory("memory")
	if mem == nil {
		return nil
	}
	b, _ := mem.Read(0, mem.Size())
	return b
}

func (i instance) Global(name string) (uint64, bool) {
	g := i.m.ExportedGlobal(name)
	if g == nil {
		return 0, false
	}
	return g.Get(), true
}
