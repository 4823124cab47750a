package snapshot

import (
	"bytes"
	"errors"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"

	"github.com/hashicorp/go-hclog"

	"github.com/blockhost/blockhost/host/engine/internal/diskcache"
)

// Cache keeps rewritten modules on disk beside the engine's compiled code,
// one checked entry per module, engine and name (host/engine/internal/diskcache),
// in DIR/blockhost-snapshot-<engine>-<version>-<platform>/:
// an entry is used only for the module bytes, engine, engine version,
// platform and rewrite it was written for, and only whole and unchanged;
// anything else is logged once and treated as a miss, and a directory that
// cannot be used turns the cache off. Nothing here fails a Load. A nil
// *Cache is a cache that is off.
//
// An entry holds the rewritten module, not compiled code: the engine
// compiles it, through its own disk cache, and the host checks it is the
// reactor it must be. Like the compile cache it trusts whoever can write
// the directory, which is created readable by its owner only.
type Cache struct {
	logger        hclog.Logger
	dir, platform string
	key           string

	mu sync.Mutex
	// byName holds one set of entries per name the module is initialised
	// as: the name is part of the entries' key, so that a module loaded
	// under two names keeps two images.
	byName map[string]*diskcache.Cache
}

// OpenCache prepares the snapshot cache under root, the engine's cache
// directory.
func OpenCache(logger hclog.Logger, root, engineName, engineVersion string) *Cache {
	dir, key := cacheLayout(engineName, engineVersion)
	return &Cache{
		logger: logger,
		dir:    filepath.Join(root, dir),
		key:    key,
		byName: map[string]*diskcache.Cache{},
	}
}

// CacheDirPrefix begins the name of every snapshot cache directory, of
// any engine, version and platform.
const CacheDirPrefix = "blockhost-snapshot-"

// cacheLayout is the name of the engine's snapshot directory under the
// root and the part of its entries' keys that names the engine; the name
// the module is initialised as follows it.
func cacheLayout(engineName, engineVersion string) (dir, key string) {
	platform := runtime.GOARCH + "-" + runtime.GOOS
	return CacheDirPrefix + engineName + "-" + engineVersion + "-" + platform,
		RewriteVersion + "; " + engineName + " " + engineVersion + "; " + platform
}

// CacheKeep is the snapshot directory of the engine under a cache root and
// the start of every key its entries carry, for pruning what it does not
// use (host/engine/cacheprune).
func CacheKeep(engineName, engineVersion string) diskcache.Keep {
	dir, key := cacheLayout(engineName, engineVersion)
	return diskcache.Keep{Dir: dir, KeyPrefix: diskcache.Format + "; " + key + "; argv0 "}
}

// entries returns the entries of images initialised as argv0.
func (c *Cache) entries(argv0 string) *diskcache.Cache {
	c.mu.Lock()
	defer c.mu.Unlock()
	d, ok := c.byName[argv0]
	if !ok {
		d = diskcache.Open(c.logger, c.dir, c.key+"; argv0 "+strconv.Quote(argv0))
		c.byName[argv0] = d
	}
	return d
}

// The payload is the name the image was initialised as, quoted, a newline
// and the rewritten module.
func payload(argv0 string, module []byte) []byte {
	p := append([]byte(strconv.Quote(argv0)), '\n')
	return append(p, module...)
}

// Load returns the module rewritten from the module whose SHA-256 is sum,
// initialised as argv0, if the cache holds one.
func (c *Cache) Load(sum diskcache.Sum, argv0 string) ([]byte, bool) {
	module, _, ok := c.load(sum, argv0, false)
	return module, ok
}

// LoadBorrowed is Load for a module that is dropped once compiled by an
// engine.Borrower: the module is read into memory of its own, in huge
// pages where the kernel offers them (diskcache.Buffer), which release
// frees. Nothing may use the module after release is called, which the
// caller must do once the engine's Compile has returned. Reading a Go
// block's 4.4 MB entry took 16–21 ms into the Go heap and about 5 ms so
// (RATIONALE.md, "Why are modules read into huge pages?").
func (c *Cache) LoadBorrowed(sum diskcache.Sum, argv0 string) (module []byte, release func(), ok bool) {
	return c.load(sum, argv0, true)
}

// load reads the entry into the Go heap, or into a buffer of its own
// that release frees.
func (c *Cache) load(sum diskcache.Sum, argv0 string, buffered bool) (module []byte, release func(), ok bool) {
	if c == nil {
		return nil, func() {}, false
	}
	d := c.entries(argv0)
	var p []byte
	if buffered {
		p, release, ok = d.LoadBuffer(sum)
	} else {
		p, ok = d.Load(sum, nil)
		release = func() {}
	}
	if !ok {
		return nil, release, false
	}
	// The key names argv0 already; the payload's own line is a second
	// check, and lets a person tell the entries apart.
	line, module, ok := bytes.Cut(p, []byte("\n"))
	if name, err := strconv.Unquote(string(line)); !ok || err != nil || name != argv0 {
		release()
		d.Reject(sum, errors.New("payload is for another initialisation"))
		return nil, func() {}, false
	}
	return module, release, true
}

// Reject refuses the entry Load returned for sum and argv0 because the
// module in it could not be used; the next Store replaces it.
func (c *Cache) Reject(sum diskcache.Sum, argv0 string, reason error) {
	if c != nil {
		c.entries(argv0).Reject(sum, reason)
	}
}

// Store writes module as the rewrite of the module whose SHA-256 is sum,
// initialised as argv0.
func (c *Cache) Store(sum diskcache.Sum, argv0 string, module []byte) {
	if c != nil {
		c.entries(argv0).Store(sum, payload(argv0, module))
	}
}
