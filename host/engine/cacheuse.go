package engine

import "sync"

// CacheUse says where an engine keeps compiled code under a cache
// directory (Config.CacheDir), so that what no engine of this build uses
// any more can be pruned (host/engine/cacheprune).
type CacheUse struct {
	// Prefix begins the name of every directory the engine's compile
	// cache makes, whatever its version or platform.
	Prefix string
	// Dir is the name of the directory this build of the engine uses,
	// and Key the engine key its entries carry.
	Dir, Key string
	// Version is what the engine's Version returns, which names its
	// snapshot cache.
	Version string
	// Legacy, if set, begins the name of the directories an earlier
	// blockhost let the engine's own cache make, unchecked; nothing uses
	// their files any more.
	Legacy string
	// Also lists the engine's other caches of checked entries (the
	// wazero engine's prepared modules).
	Also []CacheDir
}

// CacheDir is one more cache of checked entries an engine keeps: Prefix
// begins the name of its directories whatever their version or platform,
// Dir is this build's, and Key the engine key its entries carry.
type CacheDir struct {
	Prefix, Dir, Key string
}

var (
	cacheUsesMu sync.Mutex
	cacheUses   = map[string]func() CacheUse{}
)

// RegisterCacheUse records where the engine registered as name keeps
// compiled code. An engine this build cannot run registers nothing, so
// that its caches, which another build may use, are left alone.
func RegisterCacheUse(name string, f func() CacheUse) {
	cacheUsesMu.Lock()
	defer cacheUsesMu.Unlock()
	cacheUses[name] = f
}

// CacheUses returns what each engine that registered keeps, by name.
func CacheUses() map[string]CacheUse {
	cacheUsesMu.Lock()
	defer cacheUsesMu.Unlock()
	out := make(map[string]CacheUse, len(cacheUses))
	for name, f := range cacheUses {
		out[name] = f()
	}
	return out
}
