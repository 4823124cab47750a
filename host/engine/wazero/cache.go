package wazero

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/hashicorp/go-hclog"
	"github.com/tetratelabs/wazero"

	"github.com/blockhost/blockhost/host/engine"
	"github.com/blockhost/blockhost/host/engine/internal/diskcache"
)

// wazero's own disk cache (wazero.NewCompilationCacheWithDir) trusts its
// files. An entry is found by a hash of the module and read as it is: the
// only check is a CRC over the machine code, which leaves the function
// offset table, the other fields and the file's identity unchecked. A
// file of another module of the same shape runs as this module's code; a
// damaged offset table jumps into the wrong code; a damaged length makes
// it allocate without bound; a truncated or unreadable file fails every
// compilation instead of being recompiled; and a directory it cannot write
// fails every compilation of a module it has not seen. Its cache interface
// is internal, so another store cannot be plugged in.
//
// So the engine keeps its own entries, checked by diskcache (bound to the
// module's digest and to cacheKey, checksummed whole), and shows wazero
// only a private staging directory. During one compilation that directory
// holds at most the one entry that passed the checks, under the name
// wazero looks for; afterwards whatever wazero wrote there (a fresh
// compilation) is moved into a checked entry and the staging directory is
// emptied. Compilations through the disk cache therefore take turns.
//
// An entry's file starts with wazero's own bytes (diskcache puts its
// header after the payload), and wazero reads its format from the start
// of a file and stops at its end, so the checked entry is staged as a
// hard link to the very file that was checked, not a copy: the link is
// made after the checks and kept only if it names the same file
// (os.SameFile), so a file renamed into the entry's place in between is
// not staged. Entries are never written in place, and wazero never writes
// one in place either (it replaces a file by renaming a new one over it),
// so wazero reads the bytes that were checked. Where no link can be made
// the payload is copied, as before.
//
// A compilation that fails on the cached runtime is tried again on a
// runtime without any disk cache: if it succeeds there, the fault was the
// cache's (an entry wazero could not load, or a staging directory it could
// not write), and the entry is refused or the cache turned off — the
// module is compiled either way.
type diskCache struct {
	entries *diskcache.Cache
	// prepared holds the modules as prepared for wazero (prepared.go), in
	// a directory of its own beside entries', under a key that names this
	// build too (preparedKey); nil where the build cannot be named.
	prepared *diskcache.Cache
	// staging is the directory handed to wazero, removed by close; files
	// is wazero's version-specific subdirectory of it, where its entries
	// are.
	staging string
	files   string
	cc      wazero.CompilationCache
	// hold marks staging as in use (diskcache.HoldDir).
	hold *os.File

	// mu makes compilations through the staging directory take turns, so
	// that each finds there only its own entry.
	mu sync.Mutex
}

// cacheKey is the engine part of every entry's key: what changes the code
// wazero compiles, or how it is compiled.
func cacheKey(version string) string {
	return "wazero " + version + "; " + runtime.GOARCH + "-" + runtime.GOOS +
		"; " + rewriteVersion
}

// cacheDirPrefix begins the name of the cache's directory, of any version
// and platform.
const cacheDirPrefix = "blockhost-wazero-"

// cacheDirName is the name of the cache's directory under the root.
func cacheDirName(version string) string {
	return cacheDirPrefix + version + "-" + runtime.GOARCH + "-" + runtime.GOOS
}

// preparedDirPrefix begins the name of the directory of prepared modules
// (prepared.go), of any version and platform.
const preparedDirPrefix = "blockhost-prepared-wazero-"

// preparedDirName is the name of that directory under the root.
func preparedDirName(version string) string {
	return preparedDirPrefix + version + "-" + runtime.GOARCH + "-" + runtime.GOOS
}

// cacheUse says where this build keeps its entries, for pruning.
func cacheUse() engine.CacheUse {
	v := moduleVersion()
	// Before its entries were checked (RATIONALE.md), blockhost gave the
	// cache directory to wazero itself, which made wazero-VERSION-ARCH-OS.
	use := engine.CacheUse{Prefix: cacheDirPrefix, Dir: cacheDirName(v), Key: cacheKey(v), Version: v, Legacy: "wazero-v"}
	if key, ok := preparedKey(v); ok {
		use.Also = []engine.CacheDir{{Prefix: preparedDirPrefix, Dir: preparedDirName(v), Key: key}}
	}
	return use
}

// openDiskCache prepares the cache under root. It returns nil, having
// logged why once, when the directory cannot be used.
func openDiskCache(logger hclog.Logger, root, version string) *diskCache {
	dir := filepath.Join(root, cacheDirName(version))
	entries := diskcache.Open(logger, dir, cacheKey(version))
	if !entries.On() {
		return nil
	}
	staging, err := os.MkdirTemp(dir, ".staging-*")
	if err != nil {
		entries.Disable(err)
		return nil
	}
	d := &diskCache{entries: entries, staging: staging}
	if key, ok := preparedKey(version); ok {
		d.prepared = diskcache.Open(logger, filepath.Join(root, preparedDirName(version)), key)
	}
	// Held for the engine's life, so that blockhost cache prune leaves
	// the directory alone, however long it has not changed.
	d.hold, err = diskcache.HoldDir(staging)
	if err == nil {
		d.cc, err = wazero.NewCompilationCacheWithDir(staging)
	}
	if err == nil {
		d.files, err = onlySubdir(staging)
	}
	if err != nil {
		d.close(context.Background())
		entries.Disable(err)
		return nil
	}
	return d
}

// onlySubdir returns the one directory wazero made in dir.
func onlySubdir(dir string) (string, error) {
	des, err := os.ReadDir(dir)
	if err != nil {
		return "", err
	}
	if len(des) != 1 || !des[0].IsDir() {
		return "", fmt.Errorf("wazero: unexpected layout of the staging directory %s", dir)
	}
	return filepath.Join(dir, des[0].Name()), nil
}

func (d *diskCache) close(ctx context.Context) error {
	var err error
	if d.cc != nil {
		err = d.cc.Close(ctx)
	}
	err = errors.Join(err, os.RemoveAll(d.staging))
	if d.hold != nil {
		d.hold.Close()
	}
	return err
}

// compileCached compiles src, the prepared form of the module whose
// SHA-256 is sum, through the disk cache, and returns the runtime the
// module belongs to.
func (e *Engine) compileCached(ctx context.Context, sum diskcache.Sum, src []byte) (wazero.CompiledModule, wazero.Runtime, error) {
	d := e.disk
	if !d.entries.On() {
		return e.compilePlain(ctx, src)
	}
	d.mu.Lock()
	defer d.mu.Unlock()

	var staged string
	var stagedInfo os.FileInfo
	if entry, ok := d.entries.Check(sum, nameLen+1); ok {
		name, ok := payloadName(entry.Tail())
		var err error
		if ok {
			stagedInfo, err = d.stage(name, entry, d.entries.Path(d.entries.Key(sum)))
		}
		entry.Close()
		switch {
		case !ok:
			d.entries.Reject(sum, errors.New("payload names no wazero file"))
		case err != nil:
			d.entries.Disable(err)
			return e.compilePlain(ctx, src)
		default:
			staged = name
		}
	}

	cm, err := compileModule(ctx, e.rt, src)
	fresh, cerr := d.collect(staged, stagedInfo)
	if err == nil {
		switch {
		case cerr != nil:
			d.entries.Disable(cerr)
		case fresh != nil:
			d.entries.Store(sum, fresh)
		}
		return cm, e.rt, nil
	}
	// The module or the cache: a runtime without a disk cache decides.
	cm, rt, perr := e.compilePlain(ctx, src)
	if perr != nil {
		return nil, nil, perr
	}
	if staged != "" {
		d.entries.Reject(sum, fmt.Errorf("wazero could not load it: %w", err))
	} else {
		d.entries.Disable(err)
	}
	return cm, rt, nil
}

// stage puts the payload of entry, a checked entry at entryPath, where
// wazero looks for the file called name: a link to entryPath when that is
// still the file checked (whose bytes start with wazero's), else a copy
// of the payload read from the checked file, less its name.
func (d *diskCache) stage(name string, entry *diskcache.Entry, entryPath string) (os.FileInfo, error) {
	path := filepath.Join(d.files, name)
	if err := os.Link(entryPath, path); err == nil {
		if info, err := os.Lstat(path); err == nil && os.SameFile(info, entry.Info()) {
			stagedLinks.Add(1)
			return info, nil
		}
		if err := os.Remove(path); err != nil {
			return nil, err
		}
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, err
	}
	_, err = io.Copy(f, entry.Payload())
	if err == nil {
		// The payload ends with a newline and wazero's name for the file.
		var info os.FileInfo
		if info, err = f.Stat(); err == nil {
			err = f.Truncate(info.Size() - nameLen - 1)
		}
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
		return nil, err
	}
	return os.Lstat(path)
}

// collect empties the staging directory and returns, as a payload, the
// entry wazero wrote there, if it wrote one: not the staged file, which
// wazero leaves in place when it loads it.
func (d *diskCache) collect(staged string, stagedInfo os.FileInfo) ([]byte, error) {
	des, err := os.ReadDir(d.files)
	if err != nil {
		return nil, err
	}
	var fresh []byte
	for _, de := range des {
		path := filepath.Join(d.files, de.Name())
		info, err := os.Lstat(path)
		switch {
		case err != nil:
		case de.Name() == staged && os.SameFile(info, stagedInfo):
		case !isEntryName(de.Name()) || !info.Mode().IsRegular():
		default:
			code, rerr := os.ReadFile(path)
			if rerr != nil {
				err = rerr
				break
			}
			fresh = joinPayload(de.Name(), code)
		}
		if rerr := os.RemoveAll(path); err == nil {
			err = rerr
		}
		if err != nil {
			return nil, err
		}
	}
	return fresh, nil
}

// stagedLinks counts entries staged as links, for this package's tests.
var stagedLinks atomic.Int64

// A payload is wazero's file, a newline, and its name: the file first, so
// that an entry starts with it (see diskCache).
func joinPayload(name string, code []byte) []byte {
	out := make([]byte, 0, len(code)+1+len(name))
	out = append(out, code...)
	out = append(out, '\n')
	return append(out, name...)
}

// nameLen is the length of wazero's names for its files.
const nameLen = 2 * sha256.Size

// payloadName returns the name at the end of a payload, given its last
// nameLen+1 bytes.
func payloadName(tail []byte) (string, bool) {
	if len(tail) < nameLen+1 || tail[len(tail)-nameLen-1] != '\n' {
		return "", false
	}
	name := string(tail[len(tail)-nameLen:])
	return name, isEntryName(name)
}

// isEntryName reports whether name is one wazero gives its entries: the
// hex of a SHA-256.
func isEntryName(name string) bool {
	b, err := hex.DecodeString(name)
	return err == nil && len(b) == 32
}

// compilePlain compiles on the runtime without a disk cache.
func (e *Engine) compilePlain(ctx context.Context, src []byte) (wazero.CompiledModule, wazero.Runtime, error) {
	rt, err := e.plainRuntime(ctx)
	if err != nil {
		return nil, nil, err
	}
	cm, err := compileModule(ctx, rt, src)
	return cm, rt, err
}

// plainRuntime returns the runtime without a disk cache, creating it on
// first use.
func (e *Engine) plainRuntime(ctx context.Context) (wazero.Runtime, error) {
	e.plainMu.Lock()
	defer e.plainMu.Unlock()
	if e.plain == nil {
		rt, err := newRuntime(ctx, e.runtimeConfig, e.hostModules)
		if err != nil {
			return nil, err
		}
		e.plain = rt
	}
	return e.plain, nil
}
