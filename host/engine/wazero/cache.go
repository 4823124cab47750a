package wazero

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"

	"github.com/hashicorp/go-hclog"
	"github.com/tetratelabs/wazero"

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
// A compilation that fails on the cached runtime is tried again on a
// runtime without any disk cache: if it succeeds there, the fault was the
// cache's (an entry wazero could not load, or a staging directory it could
// not write), and the entry is refused or the cache turned off — the
// module is compiled either way.
type diskCache struct {
	entries *diskcache.Cache
	// staging is the directory handed to wazero, removed by close; files
	// is wazero's version-specific subdirectory of it, where its entries
	// are.
	staging string
	files   string
	cc      wazero.CompilationCache

	// mu makes compilations through the staging directory take turns, so
	// that each finds there only its own entry.
	mu sync.Mutex
}

// cacheKey is the engine part of every entry's key: what changes the code
// wazero compiles, or how it is compiled.
func cacheKey(version string) string {
	return "wazero " + version + "; " + runtime.GOARCH + "-" + runtime.GOOS +
		"; close-on-context-done; " + rewriteVersion
}

// openDiskCache prepares the cache under root. It returns nil, having
// logged why once, when the directory cannot be used.
func openDiskCache(logger hclog.Logger, root, version string) *diskCache {
	dir := filepath.Join(root, "blockhost-wazero-"+version+"-"+runtime.GOARCH+"-"+runtime.GOOS)
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
	if d.cc, err = wazero.NewCompilationCacheWithDir(staging); err == nil {
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
	return errors.Join(err, os.RemoveAll(d.staging))
}

// compileCached compiles src, the rewritten form of wasm, through the disk
// cache, and returns the runtime the module belongs to.
func (e *Engine) compileCached(ctx context.Context, wasm, src []byte) (wazero.CompiledModule, wazero.Runtime, error) {
	d := e.disk
	if !d.entries.On() {
		return e.compilePlain(ctx, src)
	}
	d.mu.Lock()
	defer d.mu.Unlock()

	var staged string
	var stagedInfo os.FileInfo
	if payload, ok := d.entries.Load(wasm); ok {
		name, code, ok := splitPayload(payload)
		if !ok {
			d.entries.Reject(wasm, errors.New("payload names no wazero file"))
		} else if info, err := d.stage(name, code); err != nil {
			d.entries.Disable(err)
			return e.compilePlain(ctx, src)
		} else {
			staged, stagedInfo = name, info
		}
	}

	cm, err := e.rt.CompileModule(ctx, src)
	fresh, cerr := d.collect(staged, stagedInfo)
	if err == nil {
		switch {
		case cerr != nil:
			d.entries.Disable(cerr)
		case fresh != nil:
			d.entries.Store(wasm, fresh)
		}
		return cm, e.rt, nil
	}
	// The module or the cache: a runtime without a disk cache decides.
	cm, rt, perr := e.compilePlain(ctx, src)
	if perr != nil {
		return nil, nil, perr
	}
	if staged != "" {
		d.entries.Reject(wasm, fmt.Errorf("wazero could not load it: %w", err))
	} else {
		d.entries.Disable(err)
	}
	return cm, rt, nil
}

// stage writes code where wazero looks for the entry called name.
func (d *diskCache) stage(name string, code []byte) (os.FileInfo, error) {
	path := filepath.Join(d.files, name)
	if err := os.WriteFile(path, code, 0o600); err != nil {
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

// A payload is wazero's file name, a newline, and the file.
func joinPayload(name string, code []byte) []byte {
	out := make([]byte, 0, len(name)+1+len(code))
	out = append(out, name...)
	out = append(out, '\n')
	return append(out, code...)
}

func splitPayload(p []byte) (name string, code []byte, ok bool) {
	n, _, ok := strings.Cut(string(p[:min(len(p), 128)]), "\n")
	if !ok || !isEntryName(n) {
		return "", nil, false
	}
	return n, p[len(n)+1:], true
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
	cm, err := rt.CompileModule(ctx, src)
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
