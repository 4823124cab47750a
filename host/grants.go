package host

import (
	"github.com/blockhost/blockhost/host/fscap"
	"github.com/blockhost/blockhost/host/httpcap"
)

// Grants are the capabilities one step may use. Everything is denied by
// default: the zero value grants nothing. Each capability adds its field
// here and an opener (registerOpener) that prepares it for a step.
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
}
