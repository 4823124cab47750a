// Package diskcache keeps an engine's compiled code on disk, one checked
// entry per module, for the engines under host/engine.
//
// Guarantees:
//   - An entry is used only for the module and engine it was written for:
//     its header names the engine's key (engine, version, platform and every
//     setting that changes the compiled code, the load-time rewrite of the
//     module included) and the SHA-256 of the module's bytes, and both must
//     match exactly.
//   - An entry is used only whole and unchanged: it ends with a SHA-256 over
//     everything before it, checked before the payload reaches the engine.
//   - A damaged, foreign, truncated or unreadable entry, or something other
//     than a regular file in its place, is logged once and reported as a
//     miss; the engine compiles the module and Store replaces the entry.
//   - A directory that cannot be used (cannot be created or written: read
//     only, full, missing rights, not a directory) is logged once and the
//     cache turns itself off: every later Load misses and every Store is
//     skipped. Nothing here ever fails a compilation.
//   - Entries are written to a temporary file and renamed into place, so a
//     reader never sees half an entry written by another process.
//
// The checks catch corruption, staleness and mix-ups, not an attacker who
// can write to the directory: such an attacker can write a well-formed
// entry. The directory is created readable by its owner only.
package diskcache

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/hashicorp/go-hclog"
)

// Format names the entry format. It is part of every entry's key, so an
// entry of another format is a plain miss, not a damaged entry.
const Format = "blockhost-compile-cache 2"

// Ext is the file name extension of every entry.
const Ext = ".entry"

// Cache is one engine's directory of entries. It is safe for concurrent
// use. A nil *Cache is a cache that is off.
type Cache struct {
	dir    string
	engine string
	logger hclog.Logger

	off      atomic.Bool
	warnOnce sync.Once

	// Hits, Misses, Rejected and WriteErrors count, for tests and
	// diagnostics, entries used, entries absent, entries refused (damaged,
	// foreign, unreadable, or refused by the engine) and failed writes.
	Hits, Misses, Rejected, WriteErrors atomic.Int64
}

// Open prepares dir, creating it readable by its owner only, for entries of
// the engine described by engineKey. If dir cannot be created or written,
// Open logs a warning once and returns a cache that is off, so that the
// engine runs without one.
func Open(logger hclog.Logger, dir, engineKey string) *Cache {
	if logger == nil {
		logger = hclog.NewNullLogger()
	}
	c := &Cache{dir: dir, engine: engineKey, logger: logger}
	if err := probe(dir); err != nil {
		c.Disable(err)
	}
	return c
}

// probe checks that dir exists, or can be made, and takes a new file.
func probe(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, ".probe-*")
	if err != nil {
		return err
	}
	name := f.Name()
	err = f.Close()
	if rerr := os.Remove(name); err == nil {
		err = rerr
	}
	return err
}

// Dir is the directory the entries are in.
func (c *Cache) Dir() string { return c.dir }

// On reports whether the cache is in use.
func (c *Cache) On() bool { return c != nil && !c.off.Load() }

// Disable turns the cache off for the rest of the process, logging why
// once: the directory cannot be used.
func (c *Cache) Disable(err error) {
	c.off.Store(true)
	c.warnOnce.Do(func() {
		c.logger.Warn("compile cache unusable; running without it (modules are compiled every time)",
			"dir", c.dir, "error", err)
	})
}

// Key is the header line that binds an entry to a module and the engine.
func (c *Cache) Key(wasm []byte) string {
	sum := sha256.Sum256(wasm)
	return Format + "; " + c.engine + "; module sha256:" + hex.EncodeToString(sum[:])
}

// Path is the file of the entry with the given key.
func (c *Cache) Path(key string) string {
	sum := sha256.Sum256([]byte(key))
	return filepath.Join(c.dir, hex.EncodeToString(sum[:])+Ext)
}

// Load returns the payload stored for wasm. ok is false on a miss: no
// entry, or one that was refused (logged) and that the next Store
// replaces.
func (c *Cache) Load(wasm []byte) (payload []byte, ok bool) {
	if !c.On() {
		return nil, false
	}
	key := c.Key(wasm)
	path := c.Path(key)
	// Lstat first: an entry is always a regular file this package wrote, and
	// opening anything else (a FIFO, a device) could block or mislead.
	info, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		c.Misses.Add(1)
		return nil, false
	}
	if err == nil && !info.Mode().IsRegular() {
		err = fmt.Errorf("not a regular file (%s)", info.Mode().Type())
	}
	var data []byte
	if err == nil {
		data, err = os.ReadFile(path)
	}
	if err != nil {
		c.reject(path, fmt.Errorf("unreadable: %w", err))
		return nil, false
	}
	payload, err = Decode(key, data)
	if err != nil {
		c.reject(path, err)
		return nil, false
	}
	c.Hits.Add(1)
	return payload, true
}

// Reject refuses the entry for wasm after Load returned it, because the
// engine could not use its payload: it is logged, counted as rejected and
// removed, so that the next compilation stores a fresh one.
func (c *Cache) Reject(wasm []byte, reason error) {
	if c == nil {
		return
	}
	c.Hits.Add(-1)
	path := c.Path(c.Key(wasm))
	c.reject(path, reason)
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		c.Disable(err)
	}
}

func (c *Cache) reject(path string, reason error) {
	c.Rejected.Add(1)
	c.logger.Warn("compile cache entry refused; compiling the module afresh and replacing the entry",
		"entry", path, "reason", reason)
}

// Store writes payload as the entry for wasm, replacing whatever is there.
// A failure turns the cache off (logged once); it never fails the caller.
func (c *Cache) Store(wasm, payload []byte) {
	if !c.On() {
		return
	}
	key := c.Key(wasm)
	if err := writeAtomic(c.Path(key), Encode(key, payload)); err != nil {
		c.WriteErrors.Add(1)
		c.Disable(err)
	}
}

// errBad is the cause of every refused entry's error.
var errBad = errors.New("diskcache: bad entry")

// The entry format:
//
//	<key>\n
//	length <payload length>\n
//	<payload>
//	<32 bytes: SHA-256 of everything above>
const sumLen = sha256.Size

// Encode returns the entry holding payload under key.
func Encode(key string, payload []byte) []byte {
	var b bytes.Buffer
	b.Grow(len(key) + len(payload) + 64)
	b.WriteString(key)
	b.WriteString("\nlength ")
	b.WriteString(strconv.Itoa(len(payload)))
	b.WriteByte('\n')
	b.Write(payload)
	sum := sha256.Sum256(b.Bytes())
	b.Write(sum[:])
	return b.Bytes()
}

// Decode checks data as the entry for key and returns its payload. The
// error says what was wrong: damaged (checksum), foreign (key) or
// malformed.
func Decode(key string, data []byte) ([]byte, error) {
	if len(data) < sumLen {
		return nil, fmt.Errorf("%w: %d bytes, shorter than its checksum (truncated)", errBad, len(data))
	}
	body, sum := data[:len(data)-sumLen], data[len(data)-sumLen:]
	if got := sha256.Sum256(body); !bytes.Equal(got[:], sum) {
		return nil, fmt.Errorf("%w: checksum mismatch (damaged or truncated)", errBad)
	}
	keyLine, rest, ok := bytes.Cut(body, []byte("\n"))
	if !ok {
		return nil, fmt.Errorf("%w: no header", errBad)
	}
	if string(keyLine) != key {
		return nil, fmt.Errorf("%w: written for another module, engine or configuration (key %q)", errBad, truncate(keyLine, 200))
	}
	lenLine, payload, ok := bytes.Cut(rest, []byte("\n"))
	n, err := strconv.Atoi(string(bytes.TrimPrefix(lenLine, []byte("length "))))
	if !ok || !bytes.HasPrefix(lenLine, []byte("length ")) || err != nil || n != len(payload) {
		return nil, fmt.Errorf("%w: bad length line", errBad)
	}
	return payload, nil
}

func truncate(b []byte, n int) string {
	if len(b) > n {
		return string(b[:n]) + "…"
	}
	return string(b)
}

// writeAtomic writes data to path through a temporary file in the same
// directory and a rename. Whatever is in the way at path, a directory
// included, is replaced: the name belongs to the cache.
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
		if err != nil {
			if info, serr := os.Lstat(path); serr == nil && info.IsDir() {
				if err = os.RemoveAll(path); err == nil {
					err = os.Rename(tmp, path)
				}
			}
		}
	}
	if err != nil {
		os.Remove(tmp)
	}
	return err
}
