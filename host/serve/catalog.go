package serve

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/blockhost/blockhost/host"
	"github.com/blockhost/blockhost/host/executor"
	"github.com/blockhost/blockhost/host/fscap"
	"github.com/blockhost/blockhost/host/httpcap"
	"github.com/blockhost/blockhost/host/job"
	"github.com/blockhost/blockhost/host/manifest"
	"github.com/blockhost/blockhost/plugins"
	"github.com/blockhost/blockhost/plugins/approval"
)

// entry is one served block: its runner and everything a step of it gets
// from the operator — grants, limits, schedule — never from the step.
type entry struct {
	name       string
	kind       string // "wasm" or "builtin"
	summary    string
	manifest   *manifest.Manifest // nil for built-ins
	module     string
	sha256     string
	idempotent bool
	pool       string
	grants     host.Grants
	limits     host.Limits
}

// catalog is what the server runs, by name. It is built once, at start,
// and never changes.
type catalog map[string]*entry

// loadCatalog loads every configured block through the request model —
// compiling it now, so that a broken catalog stops the start, not a step —
// and adds the built-in blocks that need no grant.
func loadCatalog(ctx context.Context, svc *job.Service, blocks []BlockConfig, natives []nativeBlock) (catalog, error) {
	cat := catalog{}
	builtins := append([]nativeBlock{{name: approval.Name, idempotent: true, pool: approvalPool}}, natives...)
	for _, n := range builtins {
		p, ok := plugins.Lookup(n.name)
		if !ok {
			return nil, fmt.Errorf("serve: built-in block %s is not registered", n.name)
		}
		cat[n.name] = &entry{name: p.Name, kind: "builtin", summary: p.Summary, idempotent: n.idempotent,
			pool: cmp.Or(n.pool, executor.DefaultPool), limits: host.DefaultLimits}
	}
	for _, b := range blocks {
		e, err := loadBlock(ctx, svc, b)
		if err != nil {
			return nil, err
		}
		cat[b.Name] = e
	}
	return cat, nil
}

// approvalPool is the pool that turns decisions into results: small and
// separate, so a decision never waits behind other work.
const approvalPool = "approvals"

func loadBlock(ctx context.Context, svc *job.Service, b BlockConfig) (*entry, error) {
	bad := func(format string, args ...any) error {
		return &ConfigError{Where: b.Manifest, Problem: fmt.Sprintf("block %q: ", b.Name) + fmt.Sprintf(format, args...)}
	}
	m, err := manifest.ParseFile(b.Manifest)
	if err != nil {
		return nil, bad("%v", err)
	}
	// The pins (the catalog's and the manifest's) are checked by the
	// request model on the bytes it compiles, and the digest shown is
	// theirs: the module is read once.
	xr, err := svc.Resolve(ctx, job.Request{Manifest: m.Path, SHA256: b.SHA256})
	if err != nil {
		ce := bad("%v", err).(*ConfigError)
		ce.Err = err
		return nil, ce
	}
	d, ok := xr.Runner.(interface{ Digest() string })
	if !ok {
		return nil, bad("module %s is not a WebAssembly module", m.Module)
	}
	digest := strings.TrimPrefix(d.Digest(), "sha256:")
	e := &entry{name: b.Name, kind: "wasm", manifest: m, module: m.Module, sha256: digest,
		idempotent: b.Idempotent, pool: b.Pool,
		limits: host.Limits{Timeout: m.Limits.Timeout, Memory: m.Limits.Memory, Output: m.Limits.Output, Log: m.Limits.Log}.Or(host.DefaultLimits)}
	e.grants.Env = m.Env
	if len(m.HTTP) > 0 {
		if e.grants.HTTP, err = httpcap.NewPolicy(m.HTTP...); err != nil {
			return nil, bad("%v", err)
		}
	}
	for _, g := range m.FS {
		if g.HostDir, err = filepath.Abs(g.HostDir); err != nil {
			return nil, bad("dir %q: %v", g.Name, err)
		}
		e.grants.FS = append(e.grants.FS, g)
	}
	if err := fscap.ValidateGrants(e.grants.FS); err != nil {
		return nil, bad("%v", err)
	}
	return e, nil
}

func (c catalog) names() []string { return slices.Sorted(maps.Keys(c)) }

// BlockView is one block of GET /v1/blocks: what a step of it may do.
type BlockView struct {
	Name       string       `json:"name"`
	Kind       string       `json:"kind"`
	Summary    string       `json:"summary,omitempty"`
	Module     string       `json:"module,omitempty"`
	SHA256     string       `json:"sha256,omitempty"`
	Idempotent bool         `json:"idempotent"`
	Pool       string       `json:"pool"`
	Limits     LimitsView   `json:"limits"`
	Grants     GrantsView   `json:"grants"`
	Schedule   ScheduleView `json:"schedule"`
}

// LimitsView is a block's effective limits.
type LimitsView struct {
	Timeout     string `json:"timeout"`
	MemoryBytes uint64 `json:"memory_bytes"`
	OutputBytes uint64 `json:"output_bytes"`
	LogBytes    uint64 `json:"log_bytes"`
}

// GrantsView is a block's effective grants. Environment values are not
// shown: they may be secrets.
type GrantsView struct {
	Env        []string        `json:"env"`
	HTTP       []HTTPGrantView `json:"http"`
	Filesystem []DirGrantView  `json:"filesystem"`
}

// HTTPGrantView is one HTTP grant.
type HTTPGrantView struct {
	Name    string   `json:"name"`
	Scheme  string   `json:"scheme"`
	Host    string   `json:"host"`
	Port    uint16   `json:"port,omitempty"`
	Methods []string `json:"methods"`
	Paths   []string `json:"paths"`
}

// DirGrantView is one directory grant.
type DirGrantView struct {
	Name      string `json:"name"`
	GuestPath string `json:"guest_path"`
	ReadOnly  bool   `json:"read_only"`
}

// ScheduleView is a block's priority, deadlines and retry policy from its
// manifest; empty fields are the server's defaults.
type ScheduleView struct {
	Priority      string `json:"priority,omitempty"`
	TotalDeadline string `json:"total_deadline,omitempty"`
	QueueTimeout  string `json:"queue_timeout,omitempty"`
	MaxAttempts   int    `json:"max_attempts,omitempty"`
}

func (e *entry) view() BlockView {
	v := BlockView{Name: e.name, Kind: e.kind, Summary: e.summary, Module: e.module, SHA256: e.sha256,
		Idempotent: e.idempotent, Pool: e.pool,
		Limits: LimitsView{Timeout: e.limits.Timeout.String(), MemoryBytes: e.limits.Memory, OutputBytes: e.limits.Output, LogBytes: e.limits.Log},
		Grants: GrantsView{Env: slices.Sorted(maps.Keys(e.grants.Env)), HTTP: []HTTPGrantView{}, Filesystem: []DirGrantView{}},
	}
	if v.Grants.Env == nil {
		v.Grants.Env = []string{}
	}
	if m := e.manifest; m != nil {
		for _, g := range m.HTTP {
			v.Grants.HTTP = append(v.Grants.HTTP, HTTPGrantView{Name: g.Name, Scheme: g.Scheme, Host: g.Host, Port: g.Port, Methods: g.Methods, Paths: g.Paths})
		}
		s := m.Schedule
		v.Schedule = ScheduleView{Priority: s.Priority, TotalDeadline: durString(s.TotalDeadline), QueueTimeout: durString(s.QueueTimeout), MaxAttempts: s.Retry.MaxAttempts}
	}
	for _, g := range e.grants.FS {
		v.Grants.Filesystem = append(v.Grants.Filesystem, DirGrantView{Name: g.Name, GuestPath: g.GuestPath, ReadOnly: g.ReadOnly})
	}
	return v
}

func durString(d time.Duration) string {
	if d == 0 {
		return ""
	}
	return d.String()
}
