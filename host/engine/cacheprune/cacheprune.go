// Package cacheprune removes from a cache directory (engine.Config.CacheDir,
// the CLI's --cache-dir) what no engine of this build would use: compile
// and snapshot entries of older formats, of other engine versions or
// configurations, the directories of engine versions this build does not
// have, and staging files and directories left by a process that was
// killed. It is what `blockhost cache prune` runs.
//
// Guarantees:
//   - An entry that an engine of this build would load is never removed:
//     an entry is kept when its key is one this build writes, in the
//     directory this build uses.
//   - Only what blockhost's engines make is touched: directories whose
//     names begin as an engine's cache directories do, and in them entries
//     (*.entry) and staging files (.tmp-*, .probe-*, .staging-*). Any other
//     file in the directory is left alone, and so are the caches of an
//     engine this build cannot run (wasmtime in a build without cgo),
//     which another build may use.
//   - It is safe beside a blockhost process using the same directory:
//     entries are replaced by rename and read whole or refused, so one
//     removed under a process costs it a compilation, never a wrong
//     result; a staging file younger than the minimum age, which a
//     process may be writing now, is left, and so is a staging directory a
//     live process holds (a flock(2) on Unix), whatever its age.
package cacheprune

import (
	"time"

	"github.com/blockhost/blockhost/host/engine"
	"github.com/blockhost/blockhost/host/engine/internal/diskcache"
	"github.com/blockhost/blockhost/host/engine/snapshot"
)

// DefaultMinAge is how old a staging file must be before Prune takes it
// for one left by a process that stopped: a compilation writes its entry
// in seconds.
const DefaultMinAge = time.Hour

// Config configures Prune. It is immutable: each With method returns a
// modified copy.
type Config struct {
	minAge time.Duration
	dryRun bool
}

// NewConfig returns the default configuration: staging files older than
// DefaultMinAge are removed, and everything is removed, not only listed.
func NewConfig() Config { return Config{minAge: DefaultMinAge} }

// WithMinAge sets how old a staging file or directory must be to be
// removed.
func (c Config) WithMinAge(d time.Duration) Config { c.minAge = d; return c }

// WithDryRun makes Prune list what it would remove, removing nothing.
func (c Config) WithDryRun(on bool) Config { c.dryRun = on; return c }

// Removal is one file or directory removed, or that would be.
type Removal struct {
	Path string
	// Bytes is what it held (a directory: its files together).
	Bytes int64
	// Reason says why no engine of this build would use it.
	Reason string
}

// Report is what Prune removed.
type Report struct {
	Removed []Removal
	// Bytes is the sum of the removals' bytes: the space freed.
	Bytes int64
}

// Prune removes from the cache directory root what no engine of this build
// would use (see the package comment). The error, if any, joins what could
// not be read or removed; the report lists what was, all the same. A root
// that does not exist holds nothing to prune.
func Prune(root string, cfg Config) (Report, error) {
	var layout diskcache.Layout
	for name, use := range engine.CacheUses() {
		layout.Owned = append(layout.Owned, use.Prefix, snapshot.CacheDirPrefix+name+"-")
		layout.Keep = append(layout.Keep,
			diskcache.Keep{Dir: use.Dir, KeyPrefix: diskcache.Format + "; " + use.Key + "; module sha256:"},
			snapshot.CacheKeep(name, use.Version))
		if use.Legacy != "" {
			layout.Legacy = append(layout.Legacy, use.Legacy)
		}
		for _, also := range use.Also {
			layout.Owned = append(layout.Owned, also.Prefix)
			layout.Keep = append(layout.Keep, diskcache.Keep{Dir: also.Dir, KeyPrefix: diskcache.Format + "; " + also.Key + "; module sha256:"})
		}
	}
	removed, err := diskcache.Prune(root, layout, cfg.minAge, cfg.dryRun)
	var r Report
	for _, x := range removed {
		r.Removed = append(r.Removed, Removal(x))
		r.Bytes += x.Bytes
	}
	return r, err
}
