//go:build cgo

package wasmtime

import (
	"encoding/binary"
	"errors"
	"fmt"
	"path/filepath"
	"runtime"
	"strconv"

	"github.com/bytecodealliance/wasmtime-go/v39"
	"github.com/hashicorp/go-hclog"

	"github.com/blockhost/blockhost/host/engine"
	"github.com/blockhost/blockhost/host/engine/internal/diskcache"
	"github.com/blockhost/blockhost/host/engine/internal/sealed"
)

// The disk cache keeps wasmtime's serialized compiled code, one checked
// entry per module (host/engine/internal/diskcache), in a directory of its
// own under engine.Config.CacheDir named after the wasmtime version and
// the platform (wasmtime-39.0.0-amd64-linux).
//
// An entry is used only if it was written for the same module bytes under
// the same key — wasmtime and wasmtime-go versions, platform and settings,
// the grow-hook rewrite's version included, since wasmtime compiles the
// rewritten bytes, and the payload's layout — and its checksum over the
// whole entry holds; then
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
	return &diskCache{diskcache.Open(logger, filepath.Join(root, cacheDirName()), cacheKey(version))}
}

// cacheDirPrefix begins the name of the cache's directory, of any version
// and platform.
const cacheDirPrefix = "wasmtime-"

func cacheDirName() string {
	return cacheDirPrefix + libraryVersion + "-" + runtime.GOARCH + "-" + runtime.GOOS
}

func cacheKey(version string) string {
	return "wasmtime " + libraryVersion + "; wasmtime-go " + version + "; " + runtime.GOARCH + "-" + runtime.GOOS + "; " + settings + "; payload code+image"
}

// cacheUse says where this build keeps its entries, for pruning.
func cacheUse() engine.CacheUse {
	v := moduleVersion()
	return engine.CacheUse{Prefix: cacheDirPrefix, Dir: cacheDirName(), Key: cacheKey(v), Version: v}
}

// A payload is wasmtime's serialized module, then the memory image split
// out of the module before it was compiled (splitData), then the image's
// length as 8 bytes, little-endian. Storing the image saves a cache hit
// the merge and split of the module's data that made it (about 30 ms for a
// Go block's snapshot), and a hit gets the very image the code was
// compiled to start from.
const imageLenSize = 8

func joinPayload(code, image []byte) []byte {
	out := make([]byte, 0, len(code)+len(image)+imageLenSize)
	out = append(append(out, code...), image...)
	return binary.LittleEndian.AppendUint64(out, uint64(len(image)))
}

func splitPayload(p []byte) (code, image []byte, ok bool) {
	if len(p) < imageLenSize {
		return nil, nil, false
	}
	n := binary.LittleEndian.Uint64(p[len(p)-imageLenSize:])
	rest := p[:len(p)-imageLenSize]
	if n > uint64(len(rest)) {
		return nil, nil, false
	}
	return rest[:len(rest)-int(n)], rest[len(rest)-int(n):], true
}

// load returns the module compiled earlier from the module whose SHA-256
// is sum, and the memory image stored with it (nil when there is none), or
// a nil module when there is no usable entry. The image is valid until
// release is called, which the caller must do once it has used it.
func (c *diskCache) load(eng *wasmtime.Engine, sum diskcache.Sum) (mod *wasmtime.Module, image []byte, release func()) {
	// wasmtime reads the payload in C: it is read into memory of its own,
	// released once wasmtime has copied it.
	buf, release, ok := c.LoadBuffer(sum)
	if !ok {
		return nil, nil, func() {}
	}
	code, image, ok := splitPayload(buf)
	if !ok {
		release()
		c.Reject(sum, errors.New("bad image length"))
		return nil, nil, func() {}
	}
	mod, err := deserialize(eng, code)
	if err != nil {
		release()
		c.Reject(sum, fmt.Errorf("wasmtime could not load it: %s", trimError(err)))
		return nil, nil, func() {}
	}
	if len(image) == 0 {
		image = nil
	}
	return mod, image, release
}

// deserialize loads code, compiled code read from an entry and checked,
// into wasmtime. It hands wasmtime a sealed memory file of it to map,
// rather than the bytes to copy: wasmtime copies them into fresh
// anonymous memory a page fault at a time, 35-40 ms for a Go module's
// 10 MB on a virtual machine, where writing the file and mapping it take
// about 6 ms (a one-line batch's start-up was a third that copy). Sealed,
// the file cannot change or shrink under wasmtime's mapping, which
// deserializing from a file requires. Where there is no such file, or no
// /proc/self/fd to name it by, the bytes are copied as before.
func deserialize(eng *wasmtime.Engine, code []byte) (*wasmtime.Module, error) {
	if fd, err := sealed.File(codeFileName, code); err == nil {
		mod, err := wasmtime.NewModuleDeserializeFile(eng, "/proc/self/fd/"+strconv.Itoa(fd))
		sealed.Close(fd) // wasmtime's mapping keeps the file
		if err == nil {
			return mod, nil
		}
	}
	return wasmtime.NewModuleDeserialize(eng, code)
}

// codeFileName names the memory files of compiled code (in
// /proc/self/maps, as memfd:NAME).
const codeFileName = "blockhost-wasmtime-code"

// store writes mod's compiled code and the memory image it starts from as
// the entry for the module whose SHA-256 is sum. Failing to write the
// cache is not an error of the compilation.
func (c *diskCache) store(mod *wasmtime.Module, image []byte, sum diskcache.Sum) {
	if !c.On() {
		return
	}
	code, err := mod.Serialize()
	if err != nil {
		c.WriteErrors.Add(1)
		return
	}
	c.Store(sum, joinPayload(code, image))
}
