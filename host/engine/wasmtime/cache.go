//go:build cgo

package wasmtime

import (
	"fmt"
	"path/filepath"
	"runtime"

	"github.com/bytecodealliance/wasmtime-go/v39"
	"github.com/hashicorp/go-hclog"

	"github.com/blockhost/blockhost/host/engine/internal/diskcache"
)

// The disk cache keeps wasmtime's serialized compiled code, one checked
// entry per module (host/engine/internal/diskcache), in a directory of its
// own under engine.Config.CacheDir named after the wasmtime version and
// the platform (wasmtime-39.0.0-amd64-linux).
//
// An entry is used only if it was written for the same module bytes under
// the same key — wasmtime and wasmtime-go versions, platform and settings,
// the grow-hook rewrite's version included, since wasmtime compiles the
// rewritten bytes — and its checksum over the whole entry holds; then
// wasmtime itself checks the payload's compatibility as it deserializes.
// Anything else is logged once and treated as a miss: the module is
// compiled and the entry replaced. A directory that cannot be written
// turns the cache off, logged once.
//
// The payload is native code that wasmtime loads as it is: the checks
// above catch corruption, staleness and mix-ups, not an attacker who can
// write to the cache directory. The directory is created readable by its
// owner only, and must not be shared with anyone less trusted.
type diskCache struct {
	*diskcache.Cache
}

func openDiskCache(logger hclog.Logger, root, version string) *diskCache {
	dir := filepath.Join(root, "wasmtime-"+libraryVersion+"-"+runtime.GOARCH+"-"+runtime.GOOS)
	key := "wasmtime " + libraryVersion + "; wasmtime-go " + version + "; " + runtime.GOARCH + "-" + runtime.GOOS + "; " + settings
	return &diskCache{diskcache.Open(logger, dir, key)}
}

// load returns the module compiled earlier from wasm, or nil when there is
// no usable entry.
func (c *diskCache) load(eng *wasmtime.Engine, wasm []byte) *wasmtime.Module {
	payload, ok := c.Load(wasm)
	if !ok {
		return nil
	}
	mod, err := wasmtime.NewModuleDeserialize(eng, payload)
	if err != nil {
		c.Reject(wasm, fmt.Errorf("wasmtime could not load it: %s", trimError(err)))
		return nil
	}
	return mod
}

// store writes mod's compiled code as the entry for wasm. Failing to write
// the cache is not an error of the compilation.
func (c *diskCache) store(mod *wasmtime.Module, wasm []byte) {
	if !c.On() {
		return
	}
	payload, err := mod.Serialize()
	if err != nil {
		c.WriteErrors.Add(1)
		return
	}
	c.Store(wasm, payload)
}
