// Package diskcache keeps an engine's compiled code on disk, one checked
// entry per module, for the engines under host/engine.
//
// Guarantees:
//   - An entry is used only for the module and engine it was written for:
//     its header names the engine's key (engine, version, platform and every
//     setting that changes the compiled code, the load-time rewrite of the
//     module included) and the SHA-256 of the module's bytes, and both must
//     match exactly.
//   - An entry is used only whole and unchanged: it ends with a CRC-32C
//     over everything before it, checked before the payload reaches the
//     engine. (A checksum detects damage; what binds an entry to its module
//     is the module's SHA-256 in its header: RATIONALE.md, "Why a CRC-32C
//     over a cache entry?")
//   - An entry is read with read(2), never mapped, so a file shortened by
//     another process while it is read is refused like a truncated one,
//     never a fault.
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
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/hashicorp/go-hclog"

	"github.com/blockhost/blockhost/internal/populate"
)

// Format names the entry format. It is part of every entry's key, so an
// entry of another format is a plain miss, not a damaged entry.
const Format = "blockhost-compile-cache 3"

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

// Sum is the SHA-256 of a module's bytes, which entries are stored under.
type Sum = [sha256.Size]byte

// Key is the header line that binds an entry to a module, by the SHA-256
// of its bytes, and to the engine.
func (c *Cache) Key(sum Sum) string {
	return Format + "; " + c.engine + "; module sha256:" + hex.EncodeToString(sum[:])
}

// Path is the file of the entry with the given key.
func (c *Cache) Path(key string) string {
	sum := sha256.Sum256([]byte(key))
	return filepath.Join(c.dir, hex.EncodeToString(sum[:])+Ext)
}

// Load returns the payload stored for the module whose SHA-256 is sum. ok
// is false on a miss: no entry, or one that was refused (logged) and that
// the next Store replaces. The whole entry is read into alloc(size), or
// into a new slice when alloc is nil; the payload is a slice of it.
func (c *Cache) Load(sum Sum, alloc func(n int) []byte) (payload []byte, ok bool) {
	f, info, key, ok := c.open(sum)
	if !ok {
		return nil, false
	}
	defer f.Close()
	var data []byte
	if alloc != nil {
		data = alloc(int(info.Size()))[:info.Size()]
	} else {
		data = populate.Bytes(int(info.Size()))
	}
	_, err := io.ReadFull(f, data)
	if err == nil {
		payload, err = Decode(key, data)
	} else {
		err = fmt.Errorf("%w: %w (truncated while read)", errBad, err)
	}
	if err != nil {
		c.reject(c.Path(key), err)
		return nil, false
	}
	c.Hits.Add(1)
	return payload, true
}

// LoadBuffer is Load into memory of its own (Buffer), for a payload that
// is dropped once used: release frees it, and nothing may use the payload
// afterwards. On a miss release does nothing.
func (c *Cache) LoadBuffer(sum Sum) (payload []byte, release func(), ok bool) {
	release = func() {}
	payload, ok = c.Load(sum, func(n int) []byte {
		var b []byte
		b, release = Buffer(n)
		return b
	})
	if !ok {
		release()
		return nil, func() {}, false
	}
	return payload, release, true
}

// An Entry is a checked entry, held open: Check read it through a small
// buffer instead of into memory, for an engine that reads the payload
// from a file itself.
type Entry struct {
	f    *os.File
	info os.FileInfo
	// size is the payload's length; tail its last bytes.
	size int64
	tail []byte
}

// Info is the entry file's identity (os.SameFile), as it was checked.
func (e *Entry) Info() os.FileInfo { return e.info }

// Tail is the end of the payload: the bytes Check was asked for, or the
// whole payload when it is shorter.
func (e *Entry) Tail() []byte { return e.tail }

// Payload reads the payload from the open file, which starts with it.
func (e *Entry) Payload() io.Reader { return io.NewSectionReader(e.f, 0, e.size) }

// Close closes the entry's file.
func (e *Entry) Close() error { return e.f.Close() }

// Check checks the entry for the module whose SHA-256 is sum as Load
// does, reading it through a small buffer, and returns it open, with the
// last tail bytes of its payload. ok is false on a miss, as for Load. The
// caller closes the entry.
func (c *Cache) Check(sum Sum, tail int) (e *Entry, ok bool) {
	f, info, key, ok := c.open(sum)
	if !ok {
		return nil, false
	}
	e = &Entry{f: f, info: info}
	var err error
	e.size, e.tail, err = check(f, info.Size(), key, tail)
	if err != nil {
		f.Close()
		c.reject(c.Path(key), err)
		return nil, false
	}
	c.Hits.Add(1)
	return e, true
}

// check checks the entry of size bytes in f under key, streaming it
// through a small buffer, and returns the payload's length and its last
// tail bytes.
func check(f *os.File, size int64, key string, tail int) (int64, []byte, error) {
	if size < sumLen {
		return 0, nil, fmt.Errorf("%w: %d bytes, shorter than its checksum (truncated)", errBad, size)
	}
	body := size - sumLen
	crc := uint32(0)
	buf := make([]byte, min(body, 256<<10))
	for off := int64(0); off < body; {
		n, err := f.ReadAt(buf[:min(int64(len(buf)), body-off)], off)
		if err != nil {
			return 0, nil, fmt.Errorf("%w: %w (truncated while read)", errBad, err)
		}
		crc = crc32.Update(crc, castagnoli, buf[:n])
		off += int64(n)
	}
	// The end of the entry: the trailer and the payload's tail.
	end := min(size, int64(len(key)+trailerSlack+tail+sumLen))
	last := make([]byte, end)
	if _, err := f.ReadAt(last, size-end); err != nil {
		return 0, nil, fmt.Errorf("%w: %w (truncated while read)", errBad, err)
	}
	if crc != binary.LittleEndian.Uint32(last[len(last)-sumLen:]) {
		return 0, nil, fmt.Errorf("%w: checksum mismatch (damaged or truncated)", errBad)
	}
	payloadEnd, n, err := parseTrailer(key, last[:len(last)-sumLen])
	payload := body - int64(len(last)-sumLen-payloadEnd)
	if err == nil && int64(n) != payload {
		err = errBadLength
	}
	if err != nil {
		return 0, nil, err
	}
	return payload, last[max(0, payloadEnd-tail):payloadEnd], nil
}

// trailerSlack bounds the trailer's bytes besides the key: two newlines,
// "length ", the digits and a newline.
const trailerSlack = 40

// open opens the entry for sum, or reports a miss (logged when the entry
// is refused).
func (c *Cache) open(sum Sum) (f *os.File, info os.FileInfo, key string, ok bool) {
	if !c.On() {
		return nil, nil, "", false
	}
	key = c.Key(sum)
	path := c.Path(key)
	// Lstat first: an entry is always a regular file this package wrote, and
	// opening anything else (a FIFO, a device) could block or mislead.
	info, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		c.Misses.Add(1)
		return nil, nil, "", false
	}
	if err == nil && !info.Mode().IsRegular() {
		err = fmt.Errorf("not a regular file (%s)", info.Mode().Type())
	}
	if err == nil {
		f, err = os.Open(path)
	}
	if err == nil {
		// The file opened, which another process may have put in place
		// since the Lstat.
		if info, err = f.Stat(); err == nil && !info.Mode().IsRegular() {
			err = fmt.Errorf("not a regular file (%s)", info.Mode().Type())
		}
		if err == nil && info.Size() != int64(int(info.Size())) {
			err = fmt.Errorf("%d bytes, too large", info.Size())
		}
		if err != nil {
			f.Close()
		}
	}
	if err != nil {
		c.reject(path, fmt.Errorf("unreadable: %w", err))
		return nil, nil, "", false
	}
	return f, info, key, true
}

// Reject refuses the entry for the module whose SHA-256 is sum after Load
// or Check returned it, because the engine could not use its payload: it is
// logged, counted as rejected and removed, so that the next compilation
// stores a fresh one.
func (c *Cache) Reject(sum Sum, reason error) {
	if c == nil {
		return
	}
	c.Hits.Add(-1)
	path := c.Path(c.Key(sum))
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

// Store writes payload as the entry for the module whose SHA-256 is sum,
// replacing whatever is there. A failure turns the cache off (logged
// once); it never fails the caller.
func (c *Cache) Store(sum Sum, payload []byte) {
	if !c.On() {
		return
	}
	key := c.Key(sum)
	if err := writeAtomic(c.Path(key), Encode(key, payload)); err != nil {
		c.WriteErrors.Add(1)
		c.Disable(err)
	}
}

// errBad is the cause of every refused entry's error.
var errBad = errors.New("diskcache: bad entry")

// The entry format:
//
//	<payload>
//	\n<key>\n
//	length <payload length>\n
//	<4 bytes: CRC-32C (Castagnoli) of everything above, little-endian>
//
// The payload comes first, so that the file, as it is, starts with the
// engine's own bytes: the wazero engine shows wazero a checked entry by
// linking the file into its staging directory instead of copying it
// (host/engine/wazero/cache.go), and wazero reads its format from the
// start of a file and stops at its end.
const sumLen = 4

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Encode returns the entry holding payload under key.
func Encode(key string, payload []byte) []byte {
	var b bytes.Buffer
	b.Grow(len(key) + len(payload) + 64)
	b.Write(payload)
	b.WriteByte('\n')
	b.WriteString(key)
	b.WriteString("\nlength ")
	b.WriteString(strconv.Itoa(len(payload)))
	b.WriteByte('\n')
	return binary.LittleEndian.AppendUint32(b.Bytes(), crc32.Checksum(b.Bytes(), castagnoli))
}

// Decode checks data as the entry for key and returns its payload, a
// slice of data. The error says what was wrong: damaged (checksum),
// foreign (key) or malformed.
func Decode(key string, data []byte) ([]byte, error) {
	if len(data) < sumLen {
		return nil, fmt.Errorf("%w: %d bytes, shorter than its checksum (truncated)", errBad, len(data))
	}
	body, sum := data[:len(data)-sumLen], data[len(data)-sumLen:]
	if crc32.Checksum(body, castagnoli) != binary.LittleEndian.Uint32(sum) {
		return nil, fmt.Errorf("%w: checksum mismatch (damaged or truncated)", errBad)
	}
	end, n, err := parseTrailer(key, body)
	if err == nil && n != end {
		err = errBadLength
	}
	if err != nil {
		return nil, err
	}
	return body[:end], nil
}

var errBadLength = fmt.Errorf("%w: bad length line", errBad)

// parseTrailer checks the trailer at the end of b, the end of an entry's
// body, and returns where the payload ends in b and the length the
// trailer gives it, which the caller checks.
func parseTrailer(key string, b []byte) (end, length int, err error) {
	// From the end: "\n" key "\n" "length N" "\n".
	rest, ok := bytes.CutSuffix(b, []byte("\n"))
	i := bytes.LastIndexByte(rest, '\n')
	if !ok || i < 0 {
		return 0, 0, fmt.Errorf("%w: no header", errBad)
	}
	rest, lenLine := rest[:i], rest[i+1:]
	j := bytes.LastIndexByte(rest, '\n')
	if j < 0 {
		return 0, 0, fmt.Errorf("%w: no header", errBad)
	}
	keyLine := rest[j+1:]
	if string(keyLine) != key {
		return 0, 0, fmt.Errorf("%w: written for another module, engine or configuration (key %q)", errBad, truncate(keyLine, 200))
	}
	digits, ok := bytes.CutPrefix(lenLine, []byte("length "))
	n, err := strconv.Atoi(string(digits))
	if !ok || err != nil || strconv.Itoa(n) != string(digits) {
		return 0, 0, errBadLength
	}
	return j, n, nil
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
