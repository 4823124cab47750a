package host

import (
	"github.com/blockhost/blockhost/abi"
	"github.com/blockhost/blockhost/host/engine"
	"github.com/blockhost/blockhost/host/extism"
)

// Imports are the module's imports, in the order the module declares
// them: what it may ask of the host (`blockhost inspect` shows them).
func (b *Block) Imports() []engine.Import { return b.mod.Imports() }

// Exports are the module's exports, in the order the module declares them.
func (b *Block) Exports() []engine.Export { return b.mod.Exports() }

// ImportCapability names the capability an import belongs to, for a
// reviewer: "http" and "fs" (blockhost host functions that need a grant),
// "core" (the other blockhost functions: input, output, log, deadline),
// "wasi" (WASI preview1, whose files and environment are only what a step
// grants), "extism" (Extism's host ABI, "extism-user" for an embedder's
// functions) or "unknown".
func ImportCapability(im engine.Import) string {
	switch im.Module {
	case abi.ImportModule:
		// The ABI table says which capability each function belongs to.
		c, ok := abi.CapabilityOf(im.Name)
		switch {
		case !ok:
			return "unknown"
		case c == "":
			return "core"
		}
		return c
	case abi.WASIModule:
		return "wasi"
	case extism.ImportModule:
		return "extism"
	case extism.UserModule:
		return "extism-user"
	}
	return "unknown"
}
