package serve

import (
	"cmp"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/gohcl"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	hcljson "github.com/hashicorp/hcl/v2/json"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/blockhost/blockhost/host/auditlog"
	"github.com/blockhost/blockhost/host/executor"
	"github.com/blockhost/blockhost/plugins/approval"
)

// File is a parsed server configuration file (docs/serve.md): the served
// catalog, the pools and the tenants with their tokens.
type File struct {
	// Path is the file it was read from.
	Path string
	// Blocks are the served WebAssembly blocks, by name.
	Blocks []BlockConfig
	// Pools size the executor's pools; the default pool is
	// executor.DefaultPoolConfig unless configured.
	Pools map[string]executor.PoolConfig
	// Tenants are who may use the server.
	Tenants []Tenant
}

// BlockConfig is one block of the served catalog.
type BlockConfig struct {
	// Name is how steps name the block.
	Name string
	// Manifest is the block's manifest (docs/manifest.md); relative paths
	// in the file are resolved against the file's directory.
	Manifest string
	// SHA256, when set, pins the module: the server refuses to start if
	// the SHA-256, in hex, of the module bytes it compiled differs. The
	// steps run that compilation; the file is not read again.
	SHA256 string
	// Idempotent marks a block whose step may run twice with the same
	// effect as once: a step that was running when the host stopped is
	// run again after a restart if its request allowed it.
	Idempotent bool
	// Pool is the executor pool its steps run in; default "default".
	Pool string
}

// Tenant is one tenant and the tokens that act for it.
type Tenant struct {
	Name   string
	Tokens []Token
}

// Token is one bearer token. Only its SHA-256 is kept.
type Token struct {
	// Identity is who presents it, such as "ana@acme.example": the name
	// approvers are listed by.
	Identity string
	// SHA256 is the token's SHA-256.
	SHA256 [sha256.Size]byte
	// Operator tokens see every tenant's steps on the status page and in
	// listings; they act for their own tenant only.
	Operator bool
}

type fileSyntax struct {
	Blocks  []fileBlock  `hcl:"block,block"`
	Pools   []filePool   `hcl:"pool,block"`
	Tenants []fileTenant `hcl:"tenant,block"`
}

type fileBlock struct {
	Name       string  `hcl:"name,label"`
	Manifest   string  `hcl:"manifest"`
	SHA256     *string `hcl:"sha256,optional"`
	Idempotent *bool   `hcl:"idempotent,optional"`
	Pool       *string `hcl:"pool,optional"`
}

type filePool struct {
	Name        string `hcl:"name,label"`
	Concurrency int    `hcl:"concurrency"`
	QueueSize   *int   `hcl:"queue_size,optional"`
	TenantLimit *int   `hcl:"tenant_limit,optional"`
}

type fileTenant struct {
	Name   string      `hcl:"name,label"`
	Tokens []fileToken `hcl:"token,block"`
}

type fileToken struct {
	Identity string  `hcl:"identity,label"`
	SHA256   *string `hcl:"sha256,optional"`
	Secret   *string `hcl:"secret,optional"`
	Env      *string `hcl:"env,optional"`
	Operator *bool   `hcl:"operator,optional"`
}

// ParseFile reads a configuration file: HCL, or HCL's JSON form when the
// name ends in .json. Any error is a *ConfigError naming the file and
// line.
func ParseFile(path string) (*File, error) {
	src, err := os.ReadFile(path)
	if err != nil {
		return nil, &ConfigError{Where: path, Problem: err.Error()}
	}
	return Parse(src, path)
}

// Parse parses a configuration from src; filename names it in errors,
// chooses the syntax and resolves relative manifest paths.
func Parse(src []byte, filename string) (*File, error) {
	var f *hcl.File
	var diags hcl.Diagnostics
	if strings.EqualFold(filepath.Ext(filename), ".json") {
		f, diags = hcljson.Parse(src, filename)
	} else {
		f, diags = hclsyntax.ParseConfig(src, filename, hcl.InitialPos)
	}
	if diags.HasErrors() {
		return nil, diagError(diags)
	}
	var syn fileSyntax
	if diags := gohcl.DecodeBody(f.Body, nil, &syn); diags.HasErrors() {
		return nil, diagError(diags)
	}
	out := &File{Path: filename, Pools: map[string]executor.PoolConfig{}}
	where := blockRanges(f.Body)
	at := func(key ...string) string {
		r, ok := where[strings.Join(key, "/")]
		if !ok {
			return filename
		}
		return fmt.Sprintf("%s:%d,%d", r.Filename, r.Start.Line, r.Start.Column)
	}
	dir := filepath.Dir(filename)
	seen := map[string]bool{}
	for _, b := range syn.Blocks {
		if b.Name == "" || seen[b.Name] || b.Name == approval.Name {
			return nil, &ConfigError{Where: at("block", b.Name), Problem: fmt.Sprintf("block %q: names must be non-empty, unique and not a built-in block's", b.Name)}
		}
		seen[b.Name] = true
		bc := BlockConfig{Name: b.Name, Manifest: b.Manifest, Idempotent: b.Idempotent != nil && *b.Idempotent, Pool: executor.DefaultPool}
		if bc.Manifest == "" {
			return nil, &ConfigError{Where: at("block", b.Name), Problem: fmt.Sprintf("block %q: manifest is empty", b.Name)}
		}
		if !filepath.IsAbs(bc.Manifest) {
			bc.Manifest = filepath.Join(dir, bc.Manifest)
		}
		if b.SHA256 != nil {
			h := strings.ToLower(strings.TrimPrefix(*b.SHA256, "sha256:"))
			if d, err := hex.DecodeString(h); err != nil || len(d) != sha256.Size {
				return nil, &ConfigError{Where: at("block", b.Name), Problem: fmt.Sprintf("block %q: sha256 %q is not 64 hex digits", b.Name, *b.SHA256)}
			}
			bc.SHA256 = h
		}
		if b.Pool != nil {
			bc.Pool = *b.Pool
		}
		out.Blocks = append(out.Blocks, bc)
	}
	for _, p := range syn.Pools {
		if _, dup := out.Pools[p.Name]; dup || p.Name == "" {
			return nil, &ConfigError{Where: at("pool", p.Name), Problem: fmt.Sprintf("pool %q: names must be non-empty and unique", p.Name)}
		}
		pc := executor.PoolConfig{Concurrency: p.Concurrency}
		if p.QueueSize != nil {
			pc.QueueSize = *p.QueueSize
		}
		if p.TenantLimit != nil {
			pc.TenantLimit = *p.TenantLimit
		}
		out.Pools[p.Name] = pc
	}
	for _, b := range out.Blocks {
		if _, ok := out.Pools[b.Pool]; !ok && b.Pool != executor.DefaultPool {
			return nil, &ConfigError{Where: filename, Problem: fmt.Sprintf("block %q: no pool %q is configured", b.Name, b.Pool)}
		}
	}
	identities := map[string]bool{}
	hashes := map[[sha256.Size]byte]bool{}
	tenants := map[string]bool{}
	for _, t := range syn.Tenants {
		if t.Name == "" || tenants[t.Name] {
			return nil, &ConfigError{Where: at("tenant", t.Name), Problem: fmt.Sprintf("tenant %q: names must be non-empty and unique", t.Name)}
		}
		tenants[t.Name] = true
		tc := Tenant{Name: t.Name}
		for _, tok := range t.Tokens {
			where := at("tenant", t.Name, "token", tok.Identity)
			if tok.Identity == "" || identities[tok.Identity] {
				return nil, &ConfigError{Where: where, Problem: fmt.Sprintf("token %q: identities must be non-empty and unique across tenants", tok.Identity)}
			}
			identities[tok.Identity] = true
			sum, err := tokenHash(tok)
			if err != nil {
				return nil, &ConfigError{Where: where, Problem: fmt.Sprintf("token %q: %v", tok.Identity, err)}
			}
			if hashes[sum] {
				return nil, &ConfigError{Where: where, Problem: fmt.Sprintf("token %q: the same token is given to another identity", tok.Identity)}
			}
			hashes[sum] = true
			tc.Tokens = append(tc.Tokens, Token{Identity: tok.Identity, SHA256: sum, Operator: tok.Operator != nil && *tok.Operator})
		}
		out.Tenants = append(out.Tenants, tc)
	}
	return out, nil
}

// blockRanges finds where each labelled block starts, keyed by type and
// label ("tenant/acme/token/ana"), for errors that name the line. The
// first of two blocks with one key wins.
func blockRanges(body hcl.Body) map[string]hcl.Range {
	out := map[string]hcl.Range{}
	var walk func(body hcl.Body, prefix string, types ...string)
	walk = func(body hcl.Body, prefix string, types ...string) {
		schema := &hcl.BodySchema{}
		for _, t := range types {
			schema.Blocks = append(schema.Blocks, hcl.BlockHeaderSchema{Type: t, LabelNames: []string{"name"}})
		}
		content, _, _ := body.PartialContent(schema)
		if content == nil {
			return
		}
		for _, b := range content.Blocks {
			key := prefix + b.Type + "/" + b.Labels[0]
			if _, dup := out[key]; !dup {
				out[key] = b.DefRange
			}
			if b.Type == "tenant" {
				walk(b.Body, key+"/", "token")
			}
		}
	}
	walk(body, "", "block", "pool", "tenant")
	return out
}

// tokenHash reads a token's one source: sha256 (preferred: the file holds
// no secret), env (the variable holding it) or secret (the token itself).
func tokenHash(t fileToken) ([sha256.Size]byte, error) {
	var sum [sha256.Size]byte
	n := 0
	for _, p := range []*string{t.SHA256, t.Env, t.Secret} {
		if p != nil {
			n++
		}
	}
	if n != 1 {
		return sum, fmt.Errorf("set exactly one of sha256, env and secret")
	}
	switch {
	case t.SHA256 != nil:
		d, err := hex.DecodeString(strings.TrimPrefix(*t.SHA256, "sha256:"))
		if err != nil || len(d) != sha256.Size {
			return sum, fmt.Errorf("sha256 is not 64 hex digits")
		}
		copy(sum[:], d)
		return sum, nil
	case t.Env != nil:
		v := os.Getenv(*t.Env)
		if len(v) < MinTokenLength {
			return sum, fmt.Errorf("environment variable %s is unset or shorter than %d characters", *t.Env, MinTokenLength)
		}
		return sha256.Sum256([]byte(v)), nil
	default:
		if len(*t.Secret) < MinTokenLength {
			return sum, fmt.Errorf("secret is shorter than %d characters", MinTokenLength)
		}
		return sha256.Sum256([]byte(*t.Secret)), nil
	}
}

// MinTokenLength is the shortest token accepted from env or secret: 16
// characters.
const MinTokenLength = 16

func diagError(diags hcl.Diagnostics) error {
	var parts []string
	where := ""
	for _, d := range diags {
		if d.Severity != hcl.DiagError {
			continue
		}
		if where == "" && d.Subject != nil {
			where = fmt.Sprintf("%s:%d,%d", d.Subject.Filename, d.Subject.Start.Line, d.Subject.Start.Column)
		}
		parts = append(parts, strings.TrimSuffix(d.Summary+"; "+d.Detail, "; "))
	}
	return &ConfigError{Where: where, Problem: strings.Join(parts, "; ")}
}

// Defaults of a Config.
const (
	DefaultListen       = "127.0.0.1:8080"
	DefaultMaxBody      = 1 << 20
	DefaultMaxWait      = 5 * time.Minute
	DefaultDrainTimeout = 30 * time.Second
	// DefaultRetention is how long finished steps are kept: a week.
	DefaultRetention = 7 * 24 * time.Hour
)

// Config configures a Server. It is immutable: each With method returns
// a modified copy, and New validates it once.
type Config struct {
	file          *File
	storeDir      string
	insecureLocal bool
	maxBody       int64
	maxWait       time.Duration
	retention     time.Duration
	engine        string
	trustedKeys   []ed25519.PublicKey
	cacheDir      string
	audit         *auditlog.Log
	logger        hclog.Logger
	registry      *prometheus.Registry
	// natives are extra built-in blocks, served with no grant; tests
	// use them for blocks whose timing they control.
	natives []nativeBlock
}

// nativeBlock is a built-in block of the plugins registry that the
// catalog serves without a manifest.
type nativeBlock struct {
	name       string
	idempotent bool
	pool       string // default executor.DefaultPool
}

// NewConfig returns the defaults: an empty catalog (human.approval only),
// no tenants, bodies capped at DefaultMaxBody, waits at DefaultMaxWait,
// the default engine, no code cache and a logger that discards. A store
// directory must be set.
func NewConfig() Config {
	return Config{maxBody: DefaultMaxBody, maxWait: DefaultMaxWait, retention: DefaultRetention}
}

// WithFile serves the catalog, pools and tenants of f.
func (c Config) WithFile(f *File) Config { c.file = f; return c }

// WithStoreDir keeps the durable state in dir/StoreFile.
func (c Config) WithStoreDir(dir string) Config { c.storeDir = dir; return c }

// WithInsecureLocal lets requests without a token act as tenant "local",
// identity "local", with an operator's view. Serve refuses it on a
// listener that is not loopback.
func (c Config) WithInsecureLocal(on bool) Config { c.insecureLocal = on; return c }

// WithMaxBody caps request bodies, in bytes; zero keeps DefaultMaxBody.
func (c Config) WithMaxBody(n int64) Config { c.maxBody = cmp.Or(n, DefaultMaxBody); return c }

// WithMaxWait caps ?wait=; zero keeps DefaultMaxWait.
func (c Config) WithMaxWait(d time.Duration) Config { c.maxWait = cmp.Or(d, DefaultMaxWait); return c }

// WithRetention keeps finished steps — their results, approvals and
// idempotency keys — for d after they finish, then deletes them; a
// listing, GET /v1/steps/{id} and a replayed idempotency key no longer
// find them. Zero keeps DefaultRetention; a negative d keeps every step.
// Unfinished steps and pending approvals are never deleted.
func (c Config) WithRetention(d time.Duration) Config {
	c.retention = cmp.Or(d, DefaultRetention)
	return c
}

// WithTrustedKeys serves a catalog block only from a manifest signed by
// one of keys (host/sign), its module the one signed: an unsigned or
// wrongly signed manifest stops the server at start, as a bad pin does.
// None, the default, checks no signature.
func (c Config) WithTrustedKeys(keys []ed25519.PublicKey) Config {
	c.trustedKeys = slices.Clone(keys)
	return c
}

// WithEngine runs WebAssembly blocks on the named engine; empty is the
// default engine.
func (c Config) WithEngine(name string) Config { c.engine = name; return c }

// WithCacheDir keeps compiled code in dir; empty keeps none.
func (c Config) WithCacheDir(dir string) Config { c.cacheDir = dir; return c }

// WithAuditLog sets the audit log every step writes to
// (host.RuntimeConfig.WithAuditLog); nil, the default, keeps none.
func (c Config) WithAuditLog(l *auditlog.Log) Config { c.audit = l; return c }

// WithLogger sets the logger, narrowed to "serve". Nil discards.
func (c Config) WithLogger(l hclog.Logger) Config { c.logger = l; return c }

// WithRegistry registers the server's and the executor's metrics with r,
// which /metrics serves; nil, the default, uses a new registry.
func (c Config) WithRegistry(r *prometheus.Registry) Config { c.registry = r; return c }

func (c Config) validate() error {
	switch {
	case c.storeDir == "":
		return &ConfigError{Where: "store", Problem: "no store directory set"}
	case c.maxBody < 1024:
		return &ConfigError{Where: "max body", Problem: fmt.Sprintf("%d bytes: must be at least 1024", c.maxBody)}
	case c.maxWait <= 0:
		return &ConfigError{Where: "max wait", Problem: "must be positive"}
	}
	if c.file == nil || len(c.file.Tenants) == 0 {
		if !c.insecureLocal {
			return &ConfigError{Where: "tenants", Problem: "no tenant has a token and --insecure-local is not set: nobody could use the server"}
		}
	}
	return nil
}

func (c Config) pools() map[string]executor.PoolConfig {
	pools := map[string]executor.PoolConfig{executor.DefaultPool: executor.DefaultPoolConfig()}
	if c.file != nil {
		maps.Copy(pools, c.file.Pools)
	}
	return pools
}

func (c Config) blocks() []BlockConfig {
	if c.file == nil {
		return nil
	}
	return slices.Clone(c.file.Blocks)
}
