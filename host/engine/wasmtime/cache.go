//go:build cgo

package wasmtime

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync/atomic"

	"github.com/bytecodealliance/wasmtime-go/v39"
)

// The disk cache keeps wasmtime's serialized compiled code, one file per
// module, in a directory of its own under engine.Config.CacheDir named
// after the wasmtime version and the platform (wasmtime-39.0.0-amd64-linux).
//
// An entry is a three-line header followed by the payload:
//
//	blockhost-wasmtime-cache 1
//	key wasmtime 39.0.0; wasmtime-go v39.0.1; amd64-linux; <engine settings>; module sha256:<hex of the module>
//	payload sha256:<hex of the payload> <payload length>
//	<payload: wasmtime's serialization of the compiled module>
//
// The file's name is the SHA-256 of the key line. An entry is used only if
// its header is well-formed, its key is exactly the expected one (so a
// module compiled by another wasmtime version or under other settings is
// never loaded) and its payload has the recorded length and checksum; then
// wasmtime itself checks the payload's compatibility as it deserializes.
// Anything else is treated as a miss: the module is compiled and the
// entry is replaced. Entries are written to a temporary file and renamed
// into place, so a reader never sees half an entry.
//
// The payload is native code that wasmtime loads as it is: the checks
// above catch corruption and staleness, not an attacker who can write to
// the cache directory. The directory is created readable by its owner
// only, and must not be shared with anyone less trusted.
type diskCache struct {
	dir string
	// key is the engine part of every entry's key: version and settings.
	key string

	// Counters for tests and diagnostics.
	hits, misses, rejected, writeErrors atomic.Int64
}

const cacheMagic = "blockhost-wasmtime-cache 1"

func (c *diskCache) entryKey(wasm []byte) string {
	sum := sha256.Sum256(wasm)
	return c.key + "; module sha256:" + hex.EncodeToString(sum[:])
}

func (c *diskCache) path(key string) string {
	sum := sha256.Sum256([]byte(key))
	return filepath.Join(c.dir, hex.EncodeToString(sum[:])+".cwasm")
}

// load returns the module compiled earlier from wasm, or nil when there is
// no usable entry.
func (c *diskCache) load(eng *wasmtime.Engine, wasm []byte) *wasmtime.Module {
	key := c.entryKey(wasm)
	data, err := os.ReadFile(c.path(key))
	if err != nil {
		c.misses.Add(1)
		return nil
	}
	payload, err := decodeEntry(key, data)
	if err != nil {
		c.rejected.Add(1)
		return nil
	}
	mod, err := wasmtime.NewModuleDeserialize(eng, payload)
	if err != nil {
		c.rejected.Add(1)
		return nil
	}
	c.hits.Add(1)
	return mod
}

// store writes mod's compiled code as the entry for wasm. Failing to write
// the cache is not an error of the compilation: it is counted and the next
// process compiles again.
func (c *diskCache) store(mod *wasmtime.Module, wasm []byte) {
	payload, err := mod.Serialize()
	if err == nil {
		key := c.entryKey(wasm)
		err = writeAtomic(c.path(key), encodeEntry(key, payload))
	}
	if err != nil {
		c.writeErrors.Add(1)
	}
}

func encodeEntry(key string, payload []byte) []byte {
	header := cacheMagic + "\nkey " + key + "\n" + payloadLine(payload) + "\n"
	return append([]byte(header), payload...)
}

func payloadLine(payload []byte) string {
	sum := sha256.Sum256(payload)
	return "payload sha256:" + hex.EncodeToString(sum[:]) + " " + strconv.Itoa(len(payload))
}

var errBadEntry = errors.New("wasmtime: cache entry is not valid")

// decodeEntry checks an entry against the expected key and returns its
// payload. The header must be exactly the one encodeEntry writes.
func decodeEntry(key string, data []byte) ([]byte, error) {
	line := func() (string, bool) {
		i := bytes.IndexByte(data, '\n')
		if i < 0 {
			return "", false
		}
		l := string(data[:i])
		data = data[i+1:]
		return l, true
	}
	magic, ok1 := line()
	keyLine, ok2 := line()
	sumLine, ok3 := line()
	switch {
	case !ok1 || !ok2 || !ok3 || magic != cacheMagic:
		return nil, fmt.Errorf("%w: bad header", errBadEntry)
	case keyLine != "key "+key:
		return nil, fmt.Errorf("%w: key mismatch", errBadEntry)
	case sumLine != payloadLine(data):
		return nil, fmt.Errorf("%w: payload length or checksum", errBadEntry)
	}
	return data, nil
}

// writeAtomic writes data to path through a temporary file in the same
// directory and a rename.
func writeAtomic(path string, data []byte) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, ".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, err = f.Write(data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
	}
	return err
}
