package main

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/urfave/cli/v2"

	"github.com/blockhost/blockhost/abi"
	"github.com/blockhost/blockhost/host"
	"github.com/blockhost/blockhost/host/audit"
	"github.com/blockhost/blockhost/host/engine"
	"github.com/blockhost/blockhost/host/executor"
	"github.com/blockhost/blockhost/host/job"
	"github.com/blockhost/blockhost/host/sqlcap"
)

func inspectCommand() *cli.Command {
	return &cli.Command{
		Name:      "inspect",
		Usage:     "show what a block is and may do, after flags, without running it",
		ArgsUsage: "MODULE.wasm|BUILTIN|MANIFEST [ARGS...]",
		Description: "Prints the module's digest, size and kind, its imports by capability, its exports,\n" +
			"and the grants, limits and retry policy a step would get from `blockhost run` with the\n" +
			"same flags: inspect resolves the step as run does (pins, signatures, --extend-grants).\n" +
			"A file ending in .hcl or .json is a manifest. Exit codes: 0 shown, 2 cannot be loaded.",
		Flags: append([]cli.Flag{
			&cli.BoolFlag{Name: "json", Usage: "print one JSON object instead of text"},
		}, stepFlags("inspect")...),
		Action: inspectAction,
	}
}

// inspection is inspect's JSON output; text shows the same fields.
type inspection struct {
	Module     string   `json:"module"`
	Digest     string   `json:"digest,omitempty"`
	Size       int      `json:"size,omitempty"`
	Kind       string   `json:"kind"`
	ABIVersion uint32   `json:"abi_version,omitempty"`
	Engine     string   `json:"engine,omitempty"`
	Manifest   string   `json:"manifest,omitempty"`
	Pinned     string   `json:"pinned,omitempty"`
	Signed     bool     `json:"signature_checked"`
	Args       []string `json:"args,omitempty"`
	Function   string   `json:"function,omitempty"`
	// Imports are "module.name" by capability (host.ImportCapability).
	Imports map[string][]string `json:"imports"`
	Exports []string            `json:"exports"`

	Grants   inspectGrants   `json:"grants"`
	Limits   inspectLimits   `json:"limits"`
	Schedule inspectSchedule `json:"schedule"`
}

type inspectGrants struct {
	// Env names the variables granted; their values may be secrets.
	Env        []string `json:"env"`
	HTTP       []string `json:"http"`
	Filesystem []string `json:"filesystem"`
	// SQL lists the databases granted, without their DSNs' secrets.
	SQL []string `json:"sql"`
	// Extended lists the grants the flags added to the manifest's
	// (--extend-grants).
	Extended []string `json:"extended"`
}

type inspectLimits struct {
	Timeout     string `json:"timeout"`
	MemoryBytes uint64 `json:"memory_bytes"`
	OutputBytes uint64 `json:"output_bytes"`
	LogBytes    uint64 `json:"log_bytes"`
}

type inspectSchedule struct {
	Priority          string   `json:"priority"`
	MaxAttempts       int      `json:"max_attempts"`
	BackoffInitial    string   `json:"backoff_initial"`
	BackoffMultiplier float64  `json:"backoff_multiplier"`
	BackoffMax        string   `json:"backoff_max"`
	NonRetryable      []string `json:"non_retryable"`
	TotalDeadline     string   `json:"total_deadline"`
	QueueTimeout      string   `json:"queue_timeout"`
}

func inspectAction(c *cli.Context) error {
	args := c.Args().Slice()
	if len(args) == 0 {
		return usageErrorf("inspect: nothing to inspect (usage: blockhost inspect [flags] MODULE.wasm|MANIFEST [ARGS...])")
	}
	req := job.Request{StepID: "inspect", InputBase64: []byte{}}
	switch strings.ToLower(filepath.Ext(args[0])) {
	case ".hcl", ".json":
		req.Manifest = args[0]
	default:
		req.Block = args[0]
	}
	if len(args) > 1 {
		req.Args = args[1:]
	}
	settings, err := stepSettings(c)
	if err != nil {
		return err
	}
	// Nothing runs, so there is nothing to log but the load's warnings,
	// which go to stderr as run's do.
	logger, err := newLogger(c, streamsOf(c).err)
	if err != nil {
		return err
	}
	svc, err := newService(c, settings, executor.PoolConfig{Concurrency: 1}, logger)
	if err != nil {
		return err
	}
	defer svc.Close(context.WithoutCancel(c.Context))
	in, err := svc.Inspect(c.Context, req)
	if err != nil {
		return usageErrorf("inspect: %v", err)
	}
	v := inspectView(in, len(settings.TrustedKeys) > 0)
	out := streamsOf(c).out
	if c.Bool("json") {
		b, err := json.MarshalIndent(v, "", "  ")
		if err != nil {
			return &exitErr{code: exitError, msg: "encoding: " + err.Error()}
		}
		_, err = fmt.Fprintf(out, "%s\n", b)
		if err != nil {
			return outputFailed(err)
		}
		return nil
	}
	if err := v.writeText(out); err != nil {
		return outputFailed(err)
	}
	return nil
}

// inspectView turns what the request model resolved into what inspect
// shows, with every default filled in as the host and executor will.
func inspectView(in *job.Inspection, signed bool) inspection {
	xr := in.Request
	v := inspection{Module: in.Module, Digest: in.Digest, Size: in.Size, Kind: "builtin", Engine: in.Engine,
		Manifest: in.Manifest, Pinned: in.Pinned, Signed: signed && in.Manifest != "",
		Args: xr.Step.Args, Function: xr.Step.Function, Imports: map[string][]string{}, Exports: []string{}}
	if b := in.Block; b != nil {
		v.Kind = b.Kind()
		if v.Kind == "abi" {
			v.ABIVersion = abi.Version
		}
		for _, im := range b.Imports() {
			group := host.ImportCapability(im)
			v.Imports[group] = append(v.Imports[group], im.Module+"."+im.Name)
		}
		for _, ex := range b.Exports() {
			name := ex.Name
			if ex.Kind != engine.KindFunc {
				name += " (" + ex.Kind.String() + ")"
			}
			v.Exports = append(v.Exports, name)
		}
	}
	g := xr.Step.Grants
	v.Grants = inspectGrants{Env: slices.Sorted(maps.Keys(g.Env)), HTTP: []string{}, Filesystem: []string{}, SQL: []string{},
		Extended: append([]string{}, xr.ExtendedGrants...)}
	if v.Grants.Env == nil {
		v.Grants.Env = []string{}
	}
	if g.HTTP != nil {
		for _, h := range g.HTTP.Grants() {
			v.Grants.HTTP = append(v.Grants.HTTP, fmt.Sprintf("%q: %s", h.Name, audit.DescribeHTTP(h)))
		}
	}
	for _, d := range g.FS {
		mode := "rw"
		if d.ReadOnly {
			mode = "ro"
		}
		v.Grants.Filesystem = append(v.Grants.Filesystem, fmt.Sprintf("%s: %s (%s)", d.GuestPath, d.HostDir, mode))
	}
	if set, ok := g.Caps[sqlcap.Name].(*sqlcap.Set); ok {
		for _, d := range set.Grants() {
			v.Grants.SQL = append(v.Grants.SQL, d.String())
		}
	}
	l := xr.Step.Limits.Or(host.DefaultLimits)
	v.Limits = inspectLimits{Timeout: l.Timeout.String(), MemoryBytes: l.Memory, OutputBytes: l.Output, LogBytes: l.Log}
	p := xr.Retry.Or(executor.DefaultRetryPolicy)
	v.Schedule = inspectSchedule{Priority: xr.Priority.String(), MaxAttempts: p.MaxAttempts,
		BackoffInitial: p.Initial.String(), BackoffMultiplier: p.Multiplier, BackoffMax: p.MaxInterval.String(),
		NonRetryable:  []string{},
		TotalDeadline: cmp.Or(xr.TotalDeadline, executor.DefaultTotalDeadline).String(),
		QueueTimeout:  cmp.Or(xr.QueueTimeout, executor.DefaultQueueTimeout).String()}
	for _, code := range p.NonRetryable {
		v.Schedule.NonRetryable = append(v.Schedule.NonRetryable, code.Name())
	}
	return v
}

func (v inspection) writeText(out io.Writer) error {
	w := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	row := func(k, format string, args ...any) { fmt.Fprintf(w, "%s\t"+format+"\n", append([]any{k}, args...)...) }
	list := func(k string, items []string) {
		if len(items) == 0 {
			row(k, "(none)")
		}
		for i, it := range items {
			if i > 0 {
				k = ""
			}
			row(k, "%s", it)
		}
	}
	row("module", "%s", v.Module)
	if v.Digest != "" {
		row("digest", "%s", v.Digest)
		row("size", "%d bytes", v.Size)
	}
	kind := map[string]string{"abi": fmt.Sprintf("blockhost block, ABI v%d", v.ABIVersion), "command": "WASI command",
		"extism": "Extism plugin", "builtin": "built-in block (Go code in the blockhost binary, no digest)"}[v.Kind]
	row("kind", "%s", cmp.Or(kind, v.Kind))
	if v.Engine != "" {
		row("engine", "%s", v.Engine)
	}
	if v.Manifest != "" {
		pin := "not pinned: add sha256 = \"" + strings.TrimPrefix(v.Digest, "sha256:") + "\""
		if v.Pinned != "" {
			pin = "pinned to " + v.Pinned + " (checked)"
		}
		row("manifest", "%s, %s", v.Manifest, pin)
		sig := "not checked (no --trusted-key)"
		if v.Signed {
			sig = "verified"
		}
		row("signature", "%s", sig)
	}
	if len(v.Args) > 0 {
		row("args", "%s", strings.Join(v.Args, " "))
	}
	if v.Function != "" {
		row("function", "%s", v.Function)
	}
	if v.Kind != "builtin" {
		groups := slices.Sorted(maps.Keys(v.Imports))
		if len(groups) == 0 {
			row("imports", "(none)")
		}
		k := "imports"
		for _, g := range groups {
			// Text shows each name once, without its module, wrapped.
			var names []string
			for _, n := range v.Imports[g] {
				_, n, _ = strings.Cut(n, ".")
				if !slices.Contains(names, n) {
					names = append(names, n)
				}
			}
			indent := g + ": "
			for _, line := range wrap(strings.Join(names, ", "), 84-len(indent)) {
				row(k, "%s%s", indent, line)
				k, indent = "", strings.Repeat(" ", len(indent))
			}
		}
		row("exports", "%s", strings.Join(v.Exports, ", "))
	}
	list("env", v.Grants.Env)
	list("http", v.Grants.HTTP)
	list("filesystem", v.Grants.Filesystem)
	list("sql", v.Grants.SQL)
	list("extended", v.Grants.Extended)
	row("limits", "timeout %s, memory %s, output %s, log %s", v.Limits.Timeout,
		sizeText(v.Limits.MemoryBytes), sizeText(v.Limits.OutputBytes), sizeText(v.Limits.LogBytes))
	s := v.Schedule
	nr := "none"
	if len(s.NonRetryable) > 0 {
		nr = strings.Join(s.NonRetryable, ", ")
	}
	row("retry", "%d attempts, backoff %s ×%g up to %s, never retried: %s", s.MaxAttempts, s.BackoffInitial,
		s.BackoffMultiplier, s.BackoffMax, nr)
	row("schedule", "priority %s, total deadline %s, queue timeout %s", s.Priority, s.TotalDeadline, s.QueueTimeout)
	return w.Flush()
}

// sizeText spells a byte count in the largest binary unit that divides it.
func sizeText(n uint64) string {
	for _, u := range []struct {
		shift uint
		name  string
	}{{30, "GiB"}, {20, "MiB"}, {10, "KiB"}} {
		if n >= 1<<u.shift && n%(1<<u.shift) == 0 {
			return fmt.Sprintf("%d%s", n>>u.shift, u.name)
		}
	}
	return fmt.Sprintf("%dB", n)
}
