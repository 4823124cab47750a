package job

import (
	"crypto/ed25519"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/blockhost/blockhost/host"
	"github.com/blockhost/blockhost/host/audit"
	"github.com/blockhost/blockhost/host/auditlog"
	"github.com/blockhost/blockhost/host/engine"
	"github.com/blockhost/blockhost/host/executor"
	"github.com/blockhost/blockhost/host/fscap"
	"github.com/blockhost/blockhost/host/httpcap"
	"github.com/blockhost/blockhost/host/manifest"
)

// DefaultMaxInput is the largest step input a Service accepts unless
// configured otherwise: 64 MiB.
const DefaultMaxInput = 64 << 20

// Settings are what an operator sets for every step of a Service — the
// command-line flags of `blockhost run` and `blockhost batch`. A zero field
// is unset. Limits, retry fields, deadlines and the engine win over the
// request's and the manifest's; grants are added to the manifest's.
type Settings struct {
	// Engine runs every WebAssembly block; empty means the manifest's
	// choice, else host.DefaultEngine.
	Engine string
	// Limits bound every step, field by field.
	Limits host.Limits
	// Retry is the retry policy, field by field; NonRetryable lists are
	// merged with the request's and the manifest's.
	Retry executor.RetryPolicy
	// TotalDeadline bounds all attempts and waits of a step.
	TotalDeadline time.Duration
	// QueueTimeout bounds the wait for a step's first attempt.
	QueueTimeout time.Duration

	// Env is added to every step's environment; a variable here replaces
	// the manifest's and the request's of the same name.
	Env map[string]string
	// HTTP grants are added to the manifest's.
	HTTP []httpcap.Grant
	// FS grants are added to the manifest's; one for a guest path the
	// manifest also grants replaces the manifest's grant.
	FS []fscap.Grant

	// CapFlags are the command-line grants of registered capabilities
	// that take them (capability.FlagGrants), such as --allow-sql's
	// values under "sql", in order; each capability's ParseFlags adds
	// them to the manifest's grant.
	CapFlags map[string][]string

	// Function is the function of an Extism plugin every step calls,
	// over the manifest's (docs/extism.md).
	Function string
	// Config is added to an Extism plugin's config from its manifest; a
	// key here replaces the manifest's.
	Config map[string]string
	// ExtendGrants lets Env, HTTP and FS add to (or, for the same
	// variable or guest path, replace) what a manifest grants. Without it
	// a manifest is the whole of what its block may do: a request naming
	// a manifest while any of them is set is refused (ErrGrantsWidened),
	// so that a flag never silently widens a reviewed manifest. Blocks
	// named without a manifest get these grants either way.
	ExtendGrants bool
	// TrustedKeys, when set, run a block only from a manifest signed by
	// one of them (host/sign): an unsigned or wrongly signed manifest, a
	// module that is not the signed one, or a block named without a
	// manifest does not load.
	TrustedKeys []ed25519.PublicKey
}

// Extensions describes each grant s adds to a manifest's, one string
// each, sorted by kind: `env NAME`, `http grant "NAME": METHODS URL…`,
// `directory grant GUEST: HOST (ro|rw)`. It is what a WidenError lists
// and what executor.Request.ExtendedGrants records.
func (s Settings) Extensions() []string {
	var ext []string
	for _, k := range slices.Sorted(maps.Keys(s.Env)) {
		ext = append(ext, "env "+k)
	}
	for _, g := range s.HTTP {
		ext = append(ext, fmt.Sprintf("http grant %q: %s", g.Name, audit.DescribeHTTP(g)))
	}
	for _, g := range s.FS {
		mode := "rw"
		if g.ReadOnly {
			mode = "ro"
		}
		ext = append(ext, fmt.Sprintf("directory grant %s: %s (%s)", g.GuestPath, g.HostDir, mode))
	}
	for _, c := range slices.Sorted(maps.Keys(s.CapFlags)) {
		for _, v := range s.CapFlags[c] {
			// Only the grant's name: the rest of a value may hold a secret
			// (an SQL grant's DSN).
			name, _, _ := strings.Cut(v, "=")
			ext = append(ext, fmt.Sprintf("%s grant %q", c, name))
		}
	}
	return ext
}

// Config configures a Service. It is immutable: each With method returns
// a modified copy. The zero value is not ready; start from NewConfig.
type Config struct {
	overrides Settings
	cacheDir  string
	logger    hclog.Logger
	audit     *auditlog.Log
	pool      executor.PoolConfig
	exec      executor.Config
	maxInput  int
}

// NewConfig returns the default configuration: no overrides, no compiled
// code cache on disk, no logs, the executor's default pool and a 64 MiB
// input limit.
func NewConfig() Config {
	return Config{pool: executor.DefaultPoolConfig(), exec: executor.NewConfig(), maxInput: DefaultMaxInput}
}

// WithOverrides sets what applies to every step over requests and
// manifests (see Settings).
func (c Config) WithOverrides(s Settings) Config {
	s.Env = maps.Clone(s.Env)
	s.Config = maps.Clone(s.Config)
	s.CapFlags = maps.Clone(s.CapFlags)
	c.overrides = s
	return c
}

// WithCacheDir keeps compiled code in dir ("" keeps none on disk).
func (c Config) WithCacheDir(dir string) Config { c.cacheDir = dir; return c }

// WithLogger sets the logger of the runtimes and the executor.
func (c Config) WithLogger(l hclog.Logger) Config { c.logger = l; return c }

// WithAuditLog sets the audit log every step's runtime writes to
// (host.RuntimeConfig.WithAuditLog); nil, the default, keeps none.
func (c Config) WithAuditLog(l *auditlog.Log) Config { c.audit = l; return c }

// WithPool sizes the executor's default pool, where every step runs.
func (c Config) WithPool(p executor.PoolConfig) Config { c.pool = p; return c }

// WithExecutorConfig sets the executor's configuration (breakers, retry
// budget, metrics registerer, …). The Service sets its default pool, its
// logger and its default retry policy over it.
func (c Config) WithExecutorConfig(e executor.Config) Config { c.exec = e; return c }

// WithMaxInput sets the largest step input accepted, in bytes.
func (c Config) WithMaxInput(n int) Config { c.maxInput = n; return c }

// validate reports the first invalid setting.
func (c Config) validate() error {
	o := c.overrides
	if o.Engine != "" {
		if _, ok := engine.Lookup(o.Engine); !ok {
			return &ConfigError{Field: "engine", Problem: fmt.Sprintf("unknown engine %q (engines: %v)", o.Engine, engine.Names())}
		}
	}
	switch {
	case o.Limits.Timeout < 0:
		return &ConfigError{Field: "timeout", Problem: "must be positive"}
	case o.Limits.Memory > manifest.MaxMemory:
		return &ConfigError{Field: "memory", Problem: "must be at most 4GiB"}
	case o.TotalDeadline < 0:
		return &ConfigError{Field: "total deadline", Problem: "must be positive"}
	case o.QueueTimeout < 0:
		return &ConfigError{Field: "queue timeout", Problem: "must be positive"}
	case c.maxInput <= 0:
		return &ConfigError{Field: "max input", Problem: "must be positive"}
	}
	if err := o.Retry.Or(executor.DefaultRetryPolicy).Validate(); err != nil {
		return &ConfigError{Field: "retry", Problem: err.Error()}
	}
	for k, v := range o.Env {
		if err := checkEnv(k, v); err != nil {
			return &ConfigError{Field: "env", Problem: err.Error()}
		}
	}
	if err := fscap.ValidateGrants(o.FS); err != nil {
		return &ConfigError{Field: "fs grants", Problem: err.Error()}
	}
	if _, err := httpcap.NewPolicy(o.HTTP...); err != nil {
		return &ConfigError{Field: "http grants", Problem: err.Error()}
	}
	if _, err := capGrants(nil, o.CapFlags); err != nil {
		return &ConfigError{Field: "capability grants", Problem: err.Error()}
	}
	return nil
}

// ValidEnvName reports whether s can name an environment variable granted
// to a guest: letters, digits and _, not starting with a digit.
func ValidEnvName(s string) bool {
	if s == "" {
		return false
	}
	for i, r := range s {
		switch {
		case r == '_', r >= 'A' && r <= 'Z', r >= 'a' && r <= 'z':
		case r >= '0' && r <= '9' && i > 0:
		default:
			return false
		}
	}
	return true
}

func checkEnv(k, v string) error {
	if !ValidEnvName(k) {
		return fmt.Errorf("%q is not a variable name (letters, digits and _)", k)
	}
	for i := 0; i < len(v); i++ {
		if v[i] == 0 {
			return fmt.Errorf("the value of %s holds a NUL byte", k)
		}
	}
	return nil
}
