package job

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/blockhost/blockhost/abi"
	"github.com/blockhost/blockhost/host"
	"github.com/blockhost/blockhost/host/capability"
	"github.com/blockhost/blockhost/host/executor"
	"github.com/blockhost/blockhost/host/fscap"
	"github.com/blockhost/blockhost/host/httpcap"
	"github.com/blockhost/blockhost/host/manifest"
	"github.com/blockhost/blockhost/host/sign"
	"github.com/blockhost/blockhost/internal/populate"
	"github.com/blockhost/blockhost/plugins"
)

// Service turns Requests into steps and runs them through its executor.
// Build one with New and Close it when done.
type Service struct {
	cfg  Config
	exec *executor.Executor
	// http is the overrides' HTTP policy, for blocks without a manifest.
	http *httpcap.Policy

	loadMu   sync.Mutex // held while loading, so that each block loads once
	runtimes map[string]*host.Runtime
	blocks   map[string]*loaded
}

// loaded is a block ready to run, with what its manifest (if any) and the
// overrides make of every step of it.
type loaded struct {
	runner   host.Runner
	args     []string
	env      map[string]string // the manifest's
	http     *httpcap.Policy   // the manifest's and the overrides'
	fs       []fscap.Grant     // the manifest's and the overrides'
	caps     map[string]any    // other capabilities': the manifest's and the overrides'
	limits   host.Limits       // the manifest's
	retry    executor.RetryPolicy
	total    time.Duration
	queue    time.Duration
	priority executor.Priority
	function string            // the manifest's (extism.go)
	config   map[string]string // the manifest's
	// module is the module file's path or the built-in block's name;
	// digest ("sha256:HEX", empty for a built-in) and size are those of
	// the bytes compiled.
	module string
	digest string
	size   int
	// engine runs the module (empty for a built-in); manifest and pinned
	// are the manifest's path and pin ("sha256:hex"), when there is one.
	engine, manifest, pinned string
	// extended lists the overrides' grants added to a manifest's
	// (Settings.Extensions), allowed by ExtendGrants.
	extended []string
	// dependency names a built-in block's dependency from its step
	// (plugins.Plugin.Dependency), or is nil.
	dependency func(host.Step) string
	err        error // why it cannot be loaded; remembered
}

// New builds a Service: it validates cfg and starts the executor. Runtimes
// are created, and blocks loaded, when a request first needs them.
func New(cfg Config) (*Service, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	var pol *httpcap.Policy
	if len(cfg.overrides.HTTP) > 0 {
		pol, _ = httpcap.NewPolicy(cfg.overrides.HTTP...) // validated
	}
	ec := cfg.exec.WithPool(executor.DefaultPool, cfg.pool)
	if cfg.logger != nil {
		ec = ec.WithLogger(cfg.logger)
	}
	e, err := executor.New(ec)
	if err != nil {
		return nil, &ConfigError{Field: "executor", Problem: err.Error()}
	}
	return &Service{cfg: cfg, exec: e, http: pol, runtimes: map[string]*host.Runtime{}, blocks: map[string]*loaded{}}, nil
}

// Executor returns the Service's executor, for its statistics.
func (s *Service) Executor() *executor.Executor { return s.exec }

// Close cancels the steps still queued or running, waits for them as
// executor.Close does, and closes the runtimes.
func (s *Service) Close(ctx context.Context) error {
	err := s.exec.Close(ctx)
	s.loadMu.Lock()
	defer s.loadMu.Unlock()
	for name, rt := range s.runtimes {
		err = errors.Join(err, rt.Close(ctx))
		delete(s.runtimes, name)
	}
	return err
}

// Run resolves r and runs it to its end. It always returns one result:
// a request that cannot run gets an error result (ErrorResult) under its
// own step ID.
func (s *Service) Run(ctx context.Context, r Request) *abi.StepResult {
	return s.Submit(ctx, r).Result()
}

// Submit resolves r and hands it to the executor without waiting. A request
// that cannot run gets a Ticket that is already done with its error
// result.
func (s *Service) Submit(ctx context.Context, r Request) *Ticket {
	xr, err := s.Resolve(ctx, r)
	if err != nil {
		return doneTicket(ErrorResult(r.StepID, r.blockName(), err))
	}
	return s.Start(ctx, xr)
}

// Start hands an already resolved request to the executor.
func (s *Service) Start(ctx context.Context, xr executor.Request) *Ticket {
	t := s.exec.Submit(ctx, xr)
	return &Ticket{id: xr.Step.ID, t: t}
}

// Resolve checks r and turns it into an executor request, loading its
// block when this Service has not yet. The error is a *FieldError naming
// the request's field, or a *LoadError naming the block.
func (s *Service) Resolve(ctx context.Context, r Request) (executor.Request, error) {
	fail := func(field, format string, args ...any) (executor.Request, error) {
		return executor.Request{}, &FieldError{StepID: r.StepID, Field: field, Problem: fmt.Sprintf(format, args...)}
	}
	switch {
	case r.Block == "" && r.Manifest == "":
		return fail("block", `missing: give "block" (a module path or a built-in block's name) or "manifest"`)
	case r.Block != "" && r.Manifest != "":
		return fail("manifest", `give "block" or "manifest", not both`)
	}
	var input []byte
	var inputs []string
	if r.Input != nil {
		input, inputs = r.Input, append(inputs, "input")
	}
	if r.InputText != nil {
		input, inputs = []byte(*r.InputText), append(inputs, "input_text")
	}
	if r.InputBase64 != nil {
		input, inputs = r.InputBase64, append(inputs, "input_base64")
	}
	if len(inputs) > 1 {
		return fail(inputs[1], "give only one of %s", strings.Join(inputs, " and "))
	}
	if len(input) > s.cfg.maxInput {
		return fail(inputs[0], "%d bytes is more than the %d bytes allowed", len(input), s.cfg.maxInput)
	}
	if r.Memory > Size(manifest.MaxMemory) {
		return fail("memory", "%d bytes is more than 4GiB", uint64(r.Memory))
	}
	if r.Priority != nil && !r.Priority.Valid() {
		return fail("priority", "%d is not -1 to 2", int(*r.Priority))
	}
	for k, v := range r.Env {
		if err := checkEnv(k, v); err != nil {
			return fail("env", "%v", err)
		}
	}
	pin, ok := normalizeDigest(r.SHA256)
	if !ok {
		return fail("sha256", "%q is not a SHA-256 digest: 64 hexadecimal digits, optionally after \"sha256:\"", r.SHA256)
	}
	var line executor.RetryPolicy
	if rr := r.Retry; rr != nil {
		if rr.MaxAttempts != nil {
			if *rr.MaxAttempts < 1 {
				return fail("retry.max_attempts", "%d: must be at least 1 (the first attempt counts)", *rr.MaxAttempts)
			}
			line.MaxAttempts = *rr.MaxAttempts
		}
		if rr.BackoffMultiplier != nil {
			if *rr.BackoffMultiplier < 1 {
				return fail("retry.backoff_multiplier", "%g: must be at least 1", *rr.BackoffMultiplier)
			}
			line.Multiplier = *rr.BackoffMultiplier
		}
		line.Initial, line.MaxInterval = time.Duration(rr.BackoffInitial), time.Duration(rr.BackoffMax)
		line.NonRetryable = rr.NonRetryable
	}

	l, err := s.load(ctx, r)
	if err != nil {
		return executor.Request{}, err
	}
	if pin != "" && pin != l.digest {
		return executor.Request{}, &LoadError{Block: r.blockName(), Module: l.digest,
			Err: &PinError{Path: l.module, By: cmp.Or(r.PinnedBy, "request's sha256"), Pinned: pin, Actual: l.digest}}
	}
	// From here on the module is known: an error names its digest.
	fail = func(field, format string, args ...any) (executor.Request, error) {
		return executor.Request{}, &FieldError{StepID: r.StepID, Field: field, Problem: fmt.Sprintf(format, args...), Module: l.digest}
	}

	o := s.cfg.overrides
	policy := o.Retry.Or(line.Or(l.retry.Or(executor.DefaultRetryPolicy)))
	if err := policy.Validate(); err != nil {
		return fail("retry", "%v", err)
	}
	step := host.Step{ID: r.StepID, Input: input, Args: l.args}
	if err := s.extism(l, &step); err != nil {
		return fail("function", "%v", err)
	}
	if r.Args != nil {
		step.Args = r.Args
	}
	lineLimits := host.Limits{Timeout: time.Duration(r.Timeout), Memory: uint64(r.Memory), Output: uint64(r.OutputLimit)}
	step.Limits = o.Limits.Or(lineLimits.Or(l.limits))
	step.Grants = host.Grants{Env: l.env, HTTP: l.http, FS: l.fs, Caps: l.caps}
	step.Audit.ExtendedGrants = l.extended
	if len(r.Env) > 0 || len(o.Env) > 0 {
		env := maps.Clone(l.env)
		if env == nil {
			env = map[string]string{}
		}
		maps.Copy(env, r.Env)
		maps.Copy(env, o.Env)
		step.Grants.Env = env
	}
	priority := l.priority
	if r.Priority != nil {
		priority = *r.Priority
	}
	dep := r.Dependency
	if dep == "" && l.dependency != nil {
		dep = l.dependency(step)
	}
	return executor.Request{
		Runner: l.runner, Step: step, Priority: priority, Retry: policy,
		TotalDeadline:  first(o.TotalDeadline, time.Duration(r.TotalDeadline), l.total),
		QueueTimeout:   first(o.QueueTimeout, time.Duration(r.QueueTimeout), l.queue),
		TenantID:       r.TenantID,
		TraceID:        r.TraceID,
		RunID:          r.RunID,
		FlowID:         r.FlowID,
		IdempotencyKey: r.IdempotencyKey,
		Dependency:     dep,
		ExtendedGrants: l.extended,
	}, nil
}

// normalizeDigest turns a pin, "HEX" or "sha256:HEX", into "sha256:hex";
// "" stays "". ok is false for anything else.
func normalizeDigest(pin string) (digest string, ok bool) {
	if pin == "" {
		return "", true
	}
	h := strings.ToLower(strings.TrimPrefix(pin, "sha256:"))
	if len(h) != 2*sha256.Size || strings.Trim(h, "0123456789abcdef") != "" {
		return "", false
	}
	return "sha256:" + h, true
}

// first returns the first non-zero duration.
func first(ds ...time.Duration) time.Duration {
	for _, d := range ds {
		if d != 0 {
			return d
		}
	}
	return 0
}

func (r Request) blockName() string {
	if r.Block != "" {
		return r.Block
	}
	return r.Manifest
}

// load returns the loaded block r names, loading it on first use. A
// failure is remembered (a thousand lines naming a broken module read it
// once), except one caused by ctx ending.
func (s *Service) load(ctx context.Context, r Request) (*loaded, error) {
	key := "block:" + r.Block
	if r.Manifest != "" {
		key = "manifest:" + r.Manifest
	}
	s.loadMu.Lock()
	defer s.loadMu.Unlock()
	if l, ok := s.blocks[key]; ok {
		if l.err != nil {
			return nil, l.err
		}
		return l, nil
	}
	var l *loaded
	var err error
	if r.Manifest == "" && len(s.cfg.overrides.TrustedKeys) > 0 {
		// Only a manifest can be signed.
		return nil, &LoadError{Block: r.blockName(), Err: &sign.Error{Kind: sign.ErrUnsigned, Path: r.Block,
			Reason: "with trusted keys a block runs only from a signed manifest, not named alone"}}
	}
	if r.Manifest != "" {
		l, err = s.loadManifest(ctx, r.Manifest)
	} else {
		l, err = s.loadModule(ctx, r.Block, "", strings.TrimSuffix(filepath.Base(r.Block), ".wasm"), s.cfg.overrides.Engine, "", "")
		if err == nil {
			l.http, l.fs = s.http, s.cfg.overrides.FS
			l.caps, _ = capGrants(nil, s.cfg.overrides.CapFlags) // validated
		}
	}
	if err != nil {
		if ctx.Err() != nil {
			return nil, &LoadError{Block: r.blockName(), Err: context.Cause(ctx)}
		}
		le := &LoadError{Block: r.blockName(), Err: err}
		var pe *PinError
		if errors.As(err, &pe) {
			le.Module = pe.Actual
		}
		s.blocks[key] = &loaded{err: le}
		return nil, le
	}
	s.blocks[key] = l
	return l, nil
}

// loadModule loads the block at path, or the built-in block named builtin
// (path when empty) when no file exists at path. signed, when set, is the
// module a signature names (sign.ModuleDigest), and pinned the digest a
// manifest pins ("sha256:hex"): any other module is refused, its digest
// taken from the bytes compiled, not read again.
func (s *Service) loadModule(ctx context.Context, path, builtin, name, engineName, signed, pinned string) (*loaded, error) {
	if builtin == "" {
		builtin = path
	}
	if p, ok := plugins.Lookup(builtin); ok {
		if _, err := os.Stat(path); err != nil {
			if signed != "" && signed != "builtin:"+p.Name {
				return nil, &sign.Error{Kind: sign.ErrModuleChanged, Path: path, Reason: fmt.Sprintf(
					"the module changed since the manifest was signed (signed %s, now builtin:%s)", signed, p.Name)}
			}
			if pinned != "" {
				return nil, &PinError{Path: path, By: "manifest", Pinned: pinned}
			}
			rt, err := s.runtime(ctx, "")
			if err != nil {
				return nil, err
			}
			return &loaded{runner: rt.Native(p.Name, p.Run), module: p.Name, dependency: p.Dependency}, nil
		}
	}
	wasm, err := populate.ReadFile(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("no such module file, and no built-in block of that name (%s)", builtinNames())
		}
		return nil, fmt.Errorf("cannot read module: %w", err)
	}
	if signed != "" || pinned != "" {
		// Checked before anything is compiled. Without a pin the digest is
		// the one Load takes of the same bytes, not a second hash of them.
		sum := sha256.Sum256(wasm)
		digest := "sha256:" + hex.EncodeToString(sum[:])
		if signed != "" && signed != digest {
			return nil, &sign.Error{Kind: sign.ErrModuleChanged, Path: path, Reason: fmt.Sprintf(
				"the module changed since the manifest was signed (signed %s, now %s)", signed, digest)}
		}
		if pinned != "" && pinned != digest {
			return nil, &PinError{Path: path, By: "manifest", Pinned: pinned, Actual: digest}
		}
	}
	rt, err := s.runtime(ctx, engineName)
	if err != nil {
		return nil, err
	}
	blk, err := rt.Load(ctx, name, wasm)
	if err != nil {
		return nil, err
	}
	return &loaded{runner: blk, module: path, digest: blk.Digest(), size: len(wasm), engine: rt.Engine()}, nil
}

func builtinNames() string {
	var names []string
	for _, p := range plugins.All() {
		names = append(names, p.Name)
	}
	if len(names) == 0 {
		return "no built-in blocks are registered"
	}
	return "built-in blocks: " + strings.Join(names, ", ")
}

func (s *Service) loadManifest(ctx context.Context, path string) (*loaded, error) {
	var (
		m      *manifest.Manifest
		signed string // the signed module, with trusted keys
		err    error
	)
	if keys := s.cfg.overrides.TrustedKeys; len(keys) > 0 {
		v, err := sign.Verify(path, keys)
		if err != nil {
			return nil, err
		}
		m, signed = v.Manifest, v.Signature.Module
	} else if m, err = manifest.ParseFile(path); err != nil {
		return nil, err
	}
	o := s.cfg.overrides
	ext := o.Extensions()
	if len(ext) > 0 && !o.ExtendGrants {
		return nil, &WidenError{Manifest: path, Grants: ext}
	}
	eng := m.Engine
	if o.Engine != "" {
		eng = o.Engine
	}
	pinned := ""
	if m.SHA256 != "" {
		pinned = "sha256:" + m.SHA256 // the manifest checked its form
	}
	l, err := s.loadModule(ctx, m.Module, m.ModuleName, m.Name, eng, signed, pinned)
	if err != nil {
		return nil, err
	}
	l.extended, l.manifest, l.pinned = ext, path, pinned
	if pinned == "" && s.cfg.logger != nil {
		// Once per manifest: a Service loads each manifest once.
		s.cfg.logger.Warn("the manifest does not pin its module: any module at its path runs under its grants; "+
			"add sha256 = \"…\" (blockhost inspect prints it)", "manifest", path, "module", l.module, "digest", l.digest)
	}
	l.args, l.env = m.Args, m.Env
	l.function, l.config = m.Function, m.Config
	l.limits = host.Limits{Timeout: m.Limits.Timeout, Memory: m.Limits.Memory, Output: m.Limits.Output, Log: m.Limits.Log}
	sch := m.Schedule
	l.retry = executor.RetryPolicy{MaxAttempts: sch.Retry.MaxAttempts, Initial: sch.Retry.BackoffInitial,
		Multiplier: sch.Retry.BackoffMultiplier, MaxInterval: sch.Retry.BackoffMax, NonRetryable: sch.Retry.NonRetryable}
	l.total, l.queue = sch.TotalDeadline, sch.QueueTimeout
	if sch.Priority != "" {
		l.priority, _ = executor.ParsePriority(sch.Priority) // the manifest checked it
	}
	if grants := append(append([]httpcap.Grant(nil), m.HTTP...), o.HTTP...); len(grants) > 0 {
		if l.http, err = httpcap.NewPolicy(grants...); err != nil {
			return nil, fmt.Errorf("http grants: %w", err)
		}
	}
	// The manifest's directories, made absolute and checked, except those
	// whose guest path an override grants; then the overrides'.
manifestGrants:
	for _, g := range m.FS {
		for _, f := range o.FS {
			if f.GuestPath == g.GuestPath {
				continue manifestGrants
			}
		}
		abs, err := filepath.Abs(g.HostDir)
		if err != nil {
			return nil, fmt.Errorf("dir %q: %w", g.Name, err)
		}
		g.HostDir = abs
		if err := CheckHostDir(abs); err != nil {
			return nil, fmt.Errorf("dir %q: %w", g.Name, err)
		}
		l.fs = append(l.fs, g)
	}
	l.fs = append(l.fs, o.FS...)
	if err := fscap.ValidateGrants(l.fs); err != nil {
		return nil, fmt.Errorf("directory grants: %w", err)
	}
	if l.caps, err = capGrants(m.Caps, o.CapFlags); err != nil {
		return nil, err
	}
	return l, nil
}

// capGrants are the grants of the capabilities other than HTTP and FS: the
// manifest's sections, with each capability's flag values added by its
// ParseFlags. Nil when there are none.
func capGrants(fromManifest map[string]any, flags map[string][]string) (map[string]any, error) {
	if len(fromManifest) == 0 && len(flags) == 0 {
		return nil, nil
	}
	out := maps.Clone(fromManifest)
	if out == nil {
		out = map[string]any{}
	}
	for _, name := range slices.Sorted(maps.Keys(flags)) {
		c, ok := capability.Lookup(name)
		fg, takes := c.(capability.FlagGrants)
		if !ok || !takes {
			return nil, fmt.Errorf("no capability %q takes grants from flags", name)
		}
		g, err := fg.ParseFlags(flags[name], out[name])
		if err != nil {
			return nil, fmt.Errorf("%s grants: %w", name, err)
		}
		out[name] = g
	}
	return out, nil
}

// CheckHostDir fails unless dir is an existing directory, so that a typo
// in a grant is a configuration error rather than every step's failure.
func CheckHostDir(dir string) error {
	info, err := os.Stat(dir)
	if err != nil {
		return err
	}
	if !info.IsDir() {
		return &os.PathError{Op: "grant", Path: dir, Err: errNotDir}
	}
	return nil
}

var errNotDir = errors.New("not a directory")

// runtime returns the runtime of an engine ("" is the default engine),
// creating it on first use. The caller holds loadMu.
func (s *Service) runtime(ctx context.Context, name string) (*host.Runtime, error) {
	if rt, ok := s.runtimes[name]; ok {
		return rt, nil
	}
	cfg := host.NewRuntimeConfig().WithCacheDir(s.cfg.cacheDir).WithAuditLog(s.cfg.audit)
	if s.cfg.logger != nil {
		cfg = cfg.WithLogger(s.cfg.logger)
	}
	if name != "" {
		cfg = cfg.WithEngine(name)
	}
	rt, err := host.NewRuntime(context.WithoutCancel(ctx), cfg)
	if err != nil {
		return nil, err
	}
	s.runtimes[name] = rt
	return rt, nil
}

// ErrorResult is the result of a request that cannot run: status error,
// class permanent, and a code saying why — missing_required_field for a
// missing block, invalid_format for text that is not a well-formed
// request (FieldError.Syntax),
// invalid_input otherwise. A request whose context ended while its block
// was loading is cancelled or timeout instead, as the cause says.
func ErrorResult(stepID, block string, err error) *abi.StepResult {
	res := &abi.StepResult{StepID: stepID, Block: block, Status: abi.StatusError}
	code := abi.CodeInvalidInput
	var fe *FieldError
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		res.Status, code = abi.StatusTimeout, abi.CodeCancelledByTimeout
	case errors.Is(err, context.Canceled) || errors.Is(err, host.ErrCancelled):
		res.Status, code = abi.StatusCancelled, abi.CodeCancelledByUser
	case errors.As(err, &fe) && fe.Field == "block" && strings.HasPrefix(fe.Problem, "missing"):
		code = abi.CodeMissingRequiredField
	case errors.As(err, &fe) && fe.Syntax:
		code = abi.CodeInvalidFormat
	}
	// The module the request named, when it was read: a refused module's
	// digest is the evidence of what was refused.
	var le *LoadError
	switch {
	case errors.As(err, &fe) && fe.Module != "":
		res.Module = fe.Module
	case errors.As(err, &le) && le.Module != "":
		res.Module = le.Module
	}
	res.Error = abi.NewError(code, abi.ClassPermanent, err.Error())
	return res
}

// Ticket is the claim on one submitted step's result.
type Ticket struct {
	id  string // the step ID asked for; empty when the executor chose
	t   *executor.Ticket
	res *abi.StepResult // set when done at submission
}

var closedCh = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

func doneTicket(res *abi.StepResult) *Ticket { return &Ticket{id: res.StepID, res: res} }

// StepID is the step's ID.
func (t *Ticket) StepID() string {
	if t.id != "" || t.t == nil {
		return t.id
	}
	return t.t.StepID()
}

// Done is closed when the result is ready.
func (t *Ticket) Done() <-chan struct{} {
	if t.t == nil {
		return closedCh
	}
	return t.t.Done()
}

// Result waits for the step's end and returns its result, under the step
// ID the request asked for (see DuplicateOf).
func (t *Ticket) Result() *abi.StepResult {
	if t.t == nil {
		return t.res
	}
	res := t.t.Result()
	if t.id != "" && res.StepID != t.id {
		cp := *res
		cp.StepID = t.id
		return &cp
	}
	return res
}

// DuplicateOf is the step ID of the step whose result this one shares, when
// the request's idempotency key was held by that step; empty otherwise.
func (t *Ticket) DuplicateOf() string {
	if t.t == nil || t.id == "" || t.t.StepID() == t.id {
		return ""
	}
	return t.t.StepID()
}

// Cancel cancels the step (and, for a duplicate, the step it shares).
func (t *Ticket) Cancel() {
	if t.t != nil {
		t.t.Cancel()
	}
}
