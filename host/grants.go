package host

import (
	"github.com/blockhost/blockhost/host/fscap"
	"github.com/blockhost/blockhost/host/httpcap"
)

// Grants are the capabilities one step may use. Everything is denied by
// default: the zero value grants nothing.
//
// The host knows capabilities only through host/capability's registry:
// for every step it opens each registered capability with the grant
// Grants holds under its name (grant). HTTP and FS have fields of their
// own, which every caller has used since before the registry; a
// capability added since has its grants in Caps, under its name, and
// needs no field here.
type Grants struct {
	// Env is the environment variables the guest sees through WASI.
	// Nothing else of the host's environment is visible.
	Env map[string]string
	// HTTP is what the step may send over HTTP (host/httpcap); nil, the
	// default, sends nothing.
	HTTP *httpcap.Policy
	// FS is the host directories the step may use (host/fscap), through
	// host calls and as WASI preopened directories; none, the default,
	// means no file system at all.
	FS []fscap.Grant
	// Caps holds the grants of every other capability by its name, such
	// as "sql", in the type that capability's Open takes (see its
	// package). A capability with no entry, the default, grants nothing.
	Caps map[string]any
}

// grant returns the step's grant of the capability name, or nil when it
// has none; a capability's Open gets it as is.
func (g *Grants) grant(name string) any {
	switch name {
	case httpcap.Name:
		if g.HTTP != nil {
			return g.HTTP
		}
		return nil
	case fscap.Name:
		if len(g.FS) > 0 {
			return g.FS
		}
		return nil
	}
	return g.Caps[name]
}
