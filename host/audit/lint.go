package audit

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/blockhost/blockhost/abi"
	"github.com/blockhost/blockhost/host/engine"
	_ "github.com/blockhost/blockhost/host/engine/wazero" // the engine Lint decodes modules with
	"github.com/blockhost/blockhost/host/httpcap"
	"github.com/blockhost/blockhost/host/manifest"
	"github.com/blockhost/blockhost/host/sign"
)

// Config configures Lint. It is immutable: each With method returns a
// modified copy. The zero value is ready to use.
type Config struct {
	trusted  []ed25519.PublicKey
	cacheDir string
	home     string
	builtin  func(name string) bool
}

// NewConfig returns the default configuration: no trusted keys (a
// signature is checked for integrity only), no compiled-code cache, the
// user's home directory as os.UserHomeDir says.
func NewConfig() Config { return Config{} }

// WithTrustedKeys checks signatures against keys: a signature by any
// other key is a finding (BH403).
func (c Config) WithTrustedKeys(keys ...ed25519.PublicKey) Config {
	c.trusted = slices.Clone(keys)
	return c
}

// WithCacheDir keeps the code compiled to read modules' imports in dir,
// as `blockhost run --cache-dir` does; empty keeps none.
func (c Config) WithCacheDir(dir string) Config {
	c.cacheDir = dir
	return c
}

// WithBuiltins says which built-in block names exist: a module that
// names no file and no built-in block is a finding (BH001). Without it,
// any name that is not a file is taken for a built-in block.
func (c Config) WithBuiltins(exists func(name string) bool) Config {
	c.builtin = exists
	return c
}

// WithHome sets the home directory the filesystem rules protect, for
// tests; empty means os.UserHomeDir.
func (c Config) WithHome(dir string) Config {
	c.home = dir
	return c
}

// Thresholds of RuleLargeLimits: a block that needs more is rare enough
// that a reviewer should see why.
const (
	LargeMemory     = 1 << 30
	LargeTimeout    = 15 * time.Minute
	LargeOutput     = 64 << 20
	LargeBody       = 256 << 20
	LargeConcurrent = 64
	LargeRedirects  = 5
)

// LintFile reads the manifest at path and returns its findings, most
// serious first and, within a severity, in the order of the manifest: the
// module, HTTP grants, directory grants, the environment, pinning and
// signature, limits. The error is the manifest
// package's, or the os package's for a file that cannot be read; a module
// that cannot be read is a finding (BH001), not an error.
func LintFile(ctx context.Context, cfg Config, path string) ([]Finding, error) {
	src, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("manifest: %w", err)
	}
	m, err := manifest.Parse(src, path)
	if err != nil {
		return nil, err
	}
	l := &linter{cfg: cfg, m: m}
	l.module(ctx)
	l.http()
	l.filesystem()
	l.env()
	l.pinAndSignature()
	l.limits()
	// Most serious first; within a severity, in the manifest's order.
	slices.SortStableFunc(l.findings, func(a, b Finding) int { return int(b.Severity) - int(a.Severity) })
	return l.findings, nil
}

type linter struct {
	cfg      Config
	m        *manifest.Manifest
	findings []Finding
	digest   string              // the module's, "sha256:…" or "builtin:…"
	imports  map[string]struct{} // "module.name" of every imported function; nil when unknown
}

func (l *linter) add(r Rule, where, format string, args ...any) {
	l.findings = append(l.findings, Finding{Rule: r, Manifest: l.m.Path, Where: where, Message: fmt.Sprintf(format, args...)})
}

// module reads the module's digest and imports. A built-in block's
// imports are unknown: it is Go code that reaches the outside only
// through the capability packages.
func (l *linter) module(ctx context.Context) {
	digest, err := sign.ModuleDigest(l.m)
	if err != nil {
		l.add(RuleModuleUnreadable, "module", "%v", err)
		return
	}
	l.digest = digest
	if name, ok := strings.CutPrefix(digest, "builtin:"); ok {
		if l.cfg.builtin != nil && !l.cfg.builtin(name) {
			l.add(RuleModuleUnreadable, "module", "%s: no such file, and no built-in block %q", l.m.Module, name)
		}
		return
	}
	imports, err := ModuleImports(ctx, l.cfg.cacheDir, l.m.Module)
	if err != nil {
		l.add(RuleModuleUnreadable, "module", "%s: %v", l.m.Module, err)
		return
	}
	l.imports = map[string]struct{}{}
	for _, im := range imports {
		if im.Kind == engine.KindFunc {
			l.imports[im.Module+"."+im.Name] = struct{}{}
		}
	}
}

// ModuleImports returns the imports of the module file at path, decoded
// by the default engine's compiler: nothing is instantiated or run.
// cacheDir, when set, keeps the compiled code as `blockhost run` does.
func ModuleImports(ctx context.Context, cacheDir, path string) ([]engine.Import, error) {
	wasm, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	factory, ok := engine.Lookup("wazero")
	if !ok {
		return nil, errors.New("audit: the wazero engine is not registered")
	}
	e, err := factory(ctx, engine.Config{CacheDir: cacheDir})
	if err != nil {
		return nil, err
	}
	defer e.Close(context.WithoutCancel(ctx))
	mod, err := e.Compile(ctx, wasm)
	if err != nil {
		return nil, err
	}
	defer mod.Close(context.WithoutCancel(ctx))
	return mod.Imports(), nil
}

// wasiModule is the import module of WASI preview1.
const wasiModule = "wasi_snapshot_preview1"

// imports reports whether the module imports any of names; true when the
// imports are unknown, so no finding is made on a guess.
func (l *linter) importsAny(names ...string) bool {
	if l.imports == nil {
		return true
	}
	for _, n := range names {
		if _, ok := l.imports[n]; ok {
			return true
		}
	}
	return false
}

func (l *linter) http() {
	if len(l.m.HTTP) > 0 && !l.importsAny(abi.ImportModule+"."+abi.FuncHTTPRequest) {
		l.add(RuleHTTPUnused, "http", "%d HTTP grant(s), but %s does not import %s.%s: remove the grants, or check the module is the right one",
			len(l.m.HTTP), l.m.Module, abi.ImportModule, abi.FuncHTTPRequest)
	}
	for _, g := range l.m.HTTP {
		where := fmt.Sprintf("http grant %q", g.Name)
		if suffix, ok := httpcap.PublicSuffixWildcard(g.Host); ok {
			l.add(RuleHTTPWildcardPublicSuffix, where, "host %s matches every name under the public suffix %s (allow_broad = true)", g.Host, suffix)
		} else if strings.HasPrefix(g.Host, "*.") {
			l.add(RuleHTTPWildcard, where, "host %s matches every name below %s, including ones created later; name the hosts if you can", g.Host, g.Host[2:])
		}
		for _, p := range g.AllowRanges {
			l.ranges(where, p)
		}
		scheme := cmpOr(g.Scheme, httpcap.DefaultScheme)
		if scheme == "http" && !loopbackHost(g.Host) {
			l.add(RuleHTTPPlaintext, where, "plain http to %s: requests, responses and any credentials are readable and changeable on the way; use https", g.Host)
		}
		if len(g.Paths) == 0 || slices.Contains(g.Paths, "/") {
			var writes []string
			for _, m := range g.Methods {
				if m == "POST" || m == "PUT" || m == "PATCH" || m == "DELETE" {
					writes = append(writes, m)
				}
			}
			if len(writes) > 0 {
				l.add(RuleHTTPWritesEverywhere, where, "%s on every path of %s; list the paths the block needs", strings.Join(writes, ","), g.Host)
			}
		}
		for _, big := range []struct {
			what  string
			v, at int64
		}{
			{"max_request_body", g.MaxRequestBody, LargeBody},
			{"max_response_body", g.MaxResponseBody, LargeBody},
			{"max_concurrent", int64(g.MaxConcurrent), LargeConcurrent},
			{"redirects", int64(g.Redirects), LargeRedirects},
			{"total_timeout (s)", int64(g.TotalTimeout / time.Second), int64(LargeTimeout / time.Second)},
		} {
			if big.v > big.at {
				l.add(RuleLargeLimits, where, "%s is %d, above %d", big.what, big.v, big.at)
			}
		}
	}
}

func cmpOr(s, def string) string {
	if s == "" {
		return def
	}
	return strings.ToLower(s)
}

// loopbackHost reports whether a grant's host is a loopback address or
// localhost.
func loopbackHost(host string) bool {
	if strings.EqualFold(strings.TrimSuffix(host, "."), "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(strings.Trim(host, "[]"))
	return err == nil && ip.Unmap().IsLoopback()
}

// ranges makes one finding for an allow_ranges entry: the most serious
// thing it reaches.
func (l *linter) ranges(where string, p netip.Prefix) {
	names, public := httpcap.RangeCovers(p)
	has := func(sub string) bool {
		for _, n := range names {
			if strings.Contains(n, sub) {
				return true
			}
		}
		return false
	}
	list := strings.Join(names, ", ")
	if len(names) > 4 {
		list = fmt.Sprintf("%s and %d more", strings.Join(names[:4], ", "), len(names)-4)
	}
	switch {
	case public:
		l.add(RuleHTTPRangesPublic, where, "allow_ranges %s holds public addresses and reaches every special range it overlaps: %s", p, list)
	case has("link-local"):
		l.add(RuleHTTPRangesMetadata, where, "allow_ranges %s reaches %s: cloud metadata services answer there, with credentials", p, list)
	case has("private") || has("CGNAT"):
		l.add(RuleHTTPRangesPrivate, where, "allow_ranges %s reaches %s: the networks behind the host", p, list)
	case has("loopback") && len(names) == 1:
		l.add(RuleHTTPRangesLoopback, where, "allow_ranges %s reaches services on the host itself", p)
	default:
		l.add(RuleHTTPRangesOther, where, "allow_ranges %s reaches %s", p, list)
	}
}

// systemDirs are folders of the operating system a block has no business
// in; those marked true are off limits below them too.
var systemDirs = map[string]bool{
	"/etc": true, "/proc": true, "/sys": true, "/dev": true, "/boot": true, "/root": true,
	"/usr": false, "/bin": false, "/sbin": false, "/lib": false, "/lib32": false, "/lib64": false,
	"/var": false, "/run": false, "/opt": false, "/srv": false, "/snap": false,
	"/System": true, "/Library": false, "/private": false, "/Applications": false,
}

func (l *linter) filesystem() {
	if len(l.m.FS) > 0 && !l.importsAny(wasiModule+".path_open", abi.ImportModule+"."+abi.FuncFSRead, abi.ImportModule+"."+abi.FuncFSWrite,
		abi.ImportModule+"."+abi.FuncFSStat, abi.ImportModule+"."+abi.FuncFSList, abi.ImportModule+"."+abi.FuncFSAppend) {
		l.add(RuleFSUnused, "filesystem", "%d directory grant(s), but %s imports neither the fs host functions nor WASI path_open", len(l.m.FS), l.m.Module)
	}
	home := l.cfg.home
	if home == "" {
		home, _ = os.UserHomeDir()
	}
	if home != "" {
		home = realPath(home)
	}
	for _, g := range l.m.FS {
		where := fmt.Sprintf("filesystem dir %q", cmpOr(g.Name, g.GuestPath))
		mode := "read-write"
		if g.ReadOnly {
			mode = "read-only"
		}
		dir := realPath(g.HostDir)
		shown := g.HostDir
		if dir != filepath.Clean(g.HostDir) {
			shown = g.HostDir + " (" + dir + ")"
		}
		switch {
		case dir == "/":
			l.add(RuleFSRoot, where, "%s grants the whole host file system, %s", shown, mode)
		case home != "" && (dir == home || within(home, dir)):
			l.add(RuleFSHome, where, "%s is or holds the home folder %s, %s: keys, tokens and shell history live there", shown, home, mode)
		case home != "" && within(dir, home) && strings.HasPrefix(strings.TrimPrefix(dir, home+"/"), "."):
			l.add(RuleFSHome, where, "%s is a dot-folder of the home folder, %s: where keys and credentials live", shown, mode)
		case dir == "/home" || dir == "/Users":
			l.add(RuleFSHome, where, "%s holds every user's home folder, %s", shown, mode)
		default:
			for sys, below := range systemDirs {
				if dir == sys || below && within(dir, sys) {
					l.add(RuleFSSystem, where, "%s is the system folder %s or inside it, %s", shown, sys, mode)
					break
				}
			}
		}
	}
}

// realPath is p made absolute, with symbolic links resolved when it
// exists: a grant of ./data that links to /etc is a grant of /etc.
func realPath(p string) string {
	abs, err := filepath.Abs(p)
	if err != nil {
		return filepath.Clean(p)
	}
	if r, err := filepath.EvalSymlinks(abs); err == nil {
		return r
	}
	return abs
}

// within reports whether p lies strictly below dir.
func within(p, dir string) bool {
	return strings.HasPrefix(p, strings.TrimSuffix(dir, "/")+"/")
}

func (l *linter) env() {
	if len(l.m.Env) > 0 && !l.importsAny(wasiModule+".environ_get") {
		names := make([]string, 0, len(l.m.Env))
		for k := range l.m.Env {
			names = append(names, k)
		}
		slices.Sort(names)
		l.add(RuleEnvUnused, "env", "%s granted, but %s does not import WASI environ_get", strings.Join(names, ", "), l.m.Module)
	}
}

func (l *linter) pinAndSignature() {
	switch {
	case l.m.SHA256 == "" && strings.HasPrefix(l.digest, "sha256:"):
		l.add(RuleNoPin, "block", "no sha256 pin; the module is now %s: add sha256 = %q", l.digest, strings.TrimPrefix(l.digest, "sha256:"))
	case l.m.SHA256 == "":
		l.add(RuleNoPin, "block", "no sha256 pin")
	case l.digest != "" && l.digest != "sha256:"+l.m.SHA256:
		l.add(RulePinMismatch, "block", "the manifest pins sha256:%s but %s is %s", l.m.SHA256, l.m.Module, l.digest)
	}
	keys := l.cfg.trusted
	if len(keys) == 0 {
		// Integrity only: is the signature whole and current, by whoever?
		data, err := os.ReadFile(sign.SignaturePath(l.m.Path))
		if err == nil {
			if s, err := sign.ParseSignature(sign.SignaturePath(l.m.Path), data); err == nil {
				keys = []ed25519.PublicKey{s.PublicKey}
			}
		}
	}
	if len(keys) == 0 {
		keys = []ed25519.PublicKey{make(ed25519.PublicKey, ed25519.PublicKeySize)} // none matches; Verify says why
	}
	_, err := sign.Verify(l.m.Path, keys)
	switch {
	case err == nil:
	case errors.Is(err, sign.ErrUnsigned):
		l.add(RuleNoSignature, "block", "no %s: sign the reviewed manifest with blockhost sign --key KEY %s", filepath.Base(sign.SignaturePath(l.m.Path)), l.m.Path)
	default:
		l.add(RuleBadSignature, "block", "%v", err)
	}
}

func (l *linter) limits() {
	lim := l.m.Limits
	if lim.Memory > LargeMemory {
		l.add(RuleLargeLimits, "limits", "memory is %d bytes, above %d", lim.Memory, uint64(LargeMemory))
	}
	if lim.Timeout > LargeTimeout {
		l.add(RuleLargeLimits, "limits", "timeout is %s, above %s", lim.Timeout, LargeTimeout)
	}
	if lim.Output > LargeOutput {
		l.add(RuleLargeLimits, "limits", "output is %d bytes, above %d", lim.Output, uint64(LargeOutput))
	}
	if lim.Log > LargeOutput {
		l.add(RuleLargeLimits, "limits", "log is %d bytes, above %d", lim.Log, uint64(LargeOutput))
	}
}
