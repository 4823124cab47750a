// Package plugins is the registry of built-in blocks: blocks written in Go
// that ship inside blockhost and run as steps under the same contract as
// WebAssembly blocks — the same grants, limits, four statuses and result.
// They reach the outside world only through the capability packages that
// enforce a step's grants, exactly as a WebAssembly block's host calls do.
//
// Each built-in block lives in its own sub-package and registers itself
// from init; importing plugins/standard brings in the standard set.
package plugins

import (
	"sort"
	"sync"

	"github.com/blockhost/blockhost/host"
)

// Plugin is a built-in block.
type Plugin struct {
	// Name is how operators run it: `blockhost run NAME`. Names are
	// dotted, such as "http.request".
	Name string
	// Summary is one line for listings.
	Summary string
	// Run is the block's body.
	Run host.NativeFunc
	// Dependency, when set, names what a step of the block depends on,
	// for the executor's circuit breaker and retry budget, read from the
	// step before it runs: sql.query's "sql:NAME" of the database its
	// input names. Empty means none known before the step runs. Callers
	// that name a dependency themselves (a request's dependency) win.
	Dependency func(step host.Step) string
}

var (
	mu       sync.RWMutex
	registry = map[string]Plugin{}
)

// Register adds a built-in block. It panics on an empty name, a nil Run
// or a name registered twice: those are programming errors.
func Register(p Plugin) {
	mu.Lock()
	defer mu.Unlock()
	if p.Name == "" || p.Run == nil {
		panic("plugins: Register with an empty name or nil Run")
	}
	if _, dup := registry[p.Name]; dup {
		panic("plugins: Register called twice for " + p.Name)
	}
	registry[p.Name] = p
}

// Lookup returns the built-in block registered under name.
func Lookup(name string) (Plugin, bool) {
	mu.RLock()
	defer mu.RUnlock()
	p, ok := registry[name]
	return p, ok
}

// All lists the registered built-in blocks by name.
func All() []Plugin {
	mu.RLock()
	defer mu.RUnlock()
	out := make([]Plugin, 0, len(registry))
	for _, p := range registry {
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}
