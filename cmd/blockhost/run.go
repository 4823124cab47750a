package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/urfave/cli/v2"

	"github.com/blockhost/blockhost/abi"
	"github.com/blockhost/blockhost/host"
	"github.com/blockhost/blockhost/host/manifest"
	"github.com/blockhost/blockhost/plugins"
	_ "github.com/blockhost/blockhost/plugins/standard"
)

// maxInput caps the step input the CLI reads, so that a mistaken
// `--input @/dev/zero` fails instead of exhausting memory.
const maxInput = 64 << 20

func runCommand() *cli.Command {
	return &cli.Command{
		Name:      "run",
		Usage:     "run one step of a block and print its result as JSON",
		ArgsUsage: "[MODULE.wasm or BUILTIN] [ARGS...]",
		Description: "Flags come before the module; everything after the module is the guest's own argv.\n" +
			"With --manifest the module comes from the manifest and every argument is the guest's.\n" +
			"Exit codes: 0 success, 1 error, 124 timeout, 130 cancelled, 2 bad usage or configuration.",
		Flags: append([]cli.Flag{
			&cli.StringFlag{Name: "input", Aliases: []string{"i"}, Usage: "step input: JSON text, @FILE to read a file, or - for stdin"},
			&cli.DurationFlag{Name: "timeout", Usage: "step timeout (default 30s)"},
			&cli.StringFlag{Name: "memory", Usage: "linear memory cap, such as 64MiB (default 64MiB)"},
			&cli.StringFlag{Name: "output-limit", Usage: "output cap, such as 1MiB (default 1MiB)"},
			&cli.StringFlag{Name: "engine", Usage: "WebAssembly engine (default wazero)"},
			&cli.StringFlag{Name: "manifest", Aliases: []string{"m"}, Usage: "block manifest (HCL, or JSON by .json extension)"},
			&cli.StringSliceFlag{Name: "env", Usage: "grant the guest an environment variable `KEY=VALUE` (repeatable)"},
			&cli.StringFlag{Name: "step-id", Usage: "step identifier (default: a new random one)"},
		}, append(cacheFlags(), optionFlags()...)...),
		Action: runAction,
	}
}

// runSpec is everything a run needs, after flags and manifest are merged.
type runSpec struct {
	name     string
	module   string
	engine   string
	args     []string
	grants   host.Grants
	limits   host.Limits
	input    []byte
	stepID   string
	cacheDir string
	// manifest is the parsed manifest, or nil.
	manifest *manifest.Manifest
	// function and config are an Extism plugin's (run_extism.go).
	function string
	config   map[string]string
}

// runOption is a group of `run` flags owned by one feature (a capability,
// the retry policy): its flags, and how they change the spec after the
// manifest and the common flags are applied. Features register from init
// in their own file, so adding one does not touch this file.
type runOption struct {
	flags []cli.Flag
	apply func(c *cli.Context, spec *runSpec) error
}

var runOptions []runOption

func registerRunOption(o runOption) { runOptions = append(runOptions, o) }

func optionFlags() []cli.Flag {
	var fs []cli.Flag
	for _, o := range runOptions {
		fs = append(fs, o.flags...)
	}
	return fs
}

func runAction(c *cli.Context) error {
	spec, err := buildSpec(c)
	if err != nil {
		return err
	}
	logger, err := newLogger(c)
	if err != nil {
		return err
	}
	// Ctrl-C and SIGTERM cancel the step; the cause names the signal, so the
	// result says cancelled, never timeout.
	ctx, cancel := context.WithCancelCause(c.Context)
	defer cancel(nil)
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sigs)
	go func() {
		select {
		case sig := <-sigs:
			cancel(fmt.Errorf("%w: received %v", host.ErrCancelled, sig))
		case <-ctx.Done():
		}
	}()

	cfg := host.NewRuntimeConfig().WithLogger(logger).WithCacheDir(spec.cacheDir)
	if spec.engine != "" {
		cfg = cfg.WithEngine(spec.engine)
	}
	rt, err := host.NewRuntime(ctx, cfg)
	if err != nil {
		return usageErrorf("%v", err)
	}
	defer rt.Close(context.WithoutCancel(ctx))
	runner, err := loadRunner(ctx, rt, spec)
	if err != nil {
		return err
	}
	res := execute(ctx, runner, host.Step{ID: spec.stepID, Input: spec.input, Args: spec.args, Grants: spec.grants, Limits: spec.limits,
		Function: spec.function, Config: spec.config})

	out, err := json.MarshalIndent(res, "", "  ")
	if err != nil {
		return &exitErr{code: exitError, msg: "encoding the result: " + err.Error()}
	}
	fmt.Fprintf(streamsOf(c).out, "%s\n", out)
	switch res.Status {
	case abi.StatusSuccess:
		return nil
	case abi.StatusTimeout:
		return &exitErr{code: exitTimeout}
	case abi.StatusCancelled:
		return &exitErr{code: exitCancelled}
	default:
		return &exitErr{code: exitError}
	}
}

// loadRunner returns the block to run: a built-in block when the module
// names one and no file of that name exists, else the WebAssembly module.
func loadRunner(ctx context.Context, rt *host.Runtime, spec *runSpec) (host.Runner, error) {
	if p, ok := plugins.Lookup(spec.module); ok && spec.manifest == nil {
		if _, err := os.Stat(spec.module); err != nil {
			return rt.Native(p.Name, p.Run), nil
		}
	}
	wasm, err := os.ReadFile(spec.module)
	if err != nil {
		return nil, usageErrorf("cannot read module: %v", err)
	}
	blk, err := rt.Load(ctx, spec.name, wasm)
	if err != nil {
		if ctx.Err() != nil {
			return nil, &exitErr{code: exitCancelled, msg: "cancelled while compiling " + spec.module}
		}
		return nil, usageErrorf("%s: %v", spec.module, err)
	}
	if err := blk.CheckFunction(spec.function); err != nil {
		return nil, usageErrorf("%s: %v", spec.module, err)
	}
	return blk, nil
}

// execute runs the step under the retry policy and deadlines of the
// manifest and the flags (run_retry.go). It is the single place where the
// CLI runs a step.
func execute(ctx context.Context, r host.Runner, step host.Step) *abi.StepResult {
	return runWithPolicy(ctx, r, step)
}

// buildSpec merges the manifest, if any, with the flags; flags win.
func buildSpec(c *cli.Context) (*runSpec, error) {
	spec := &runSpec{stepID: c.String("step-id")}
	args := c.Args().Slice()
	if path := c.String("manifest"); path != "" {
		m, err := manifest.ParseFile(path)
		if err != nil {
			return nil, usageErrorf("%v", err)
		}
		spec.name, spec.module, spec.engine = m.Name, m.Module, m.Engine
		spec.args, spec.grants.Env = m.Args, m.Env
		spec.manifest = m
		spec.function, spec.config = m.Function, m.Config
		spec.limits = host.Limits{Timeout: m.Limits.Timeout, Memory: m.Limits.Memory, Output: m.Limits.Output, Log: m.Limits.Log}
		if len(args) > 0 {
			spec.args = args
		}
	} else {
		if len(args) == 0 {
			return nil, usageErrorf("run: no module given (usage: blockhost run [flags] MODULE.wasm [ARGS...])")
		}
		spec.module = args[0]
		spec.name = strings.TrimSuffix(filepath.Base(args[0]), ".wasm")
		spec.args = args[1:]
	}

	if c.IsSet("engine") {
		spec.engine = c.String("engine")
	}
	if c.IsSet("timeout") {
		d := c.Duration("timeout")
		if d <= 0 {
			return nil, usageErrorf("invalid --timeout %s: must be positive", d)
		}
		spec.limits.Timeout = d
	}
	for _, f := range []struct {
		flag string
		dst  *uint64
	}{{"memory", &spec.limits.Memory}, {"output-limit", &spec.limits.Output}} {
		if !c.IsSet(f.flag) {
			continue
		}
		n, err := manifest.ParseSize(c.String(f.flag))
		if err != nil {
			return nil, usageErrorf("invalid --%s: %v", f.flag, err)
		}
		if n == 0 || (f.flag == "memory" && n > manifest.MaxMemory) {
			return nil, usageErrorf("invalid --%s %q: must be more than 0 and at most 4GiB", f.flag, c.String(f.flag))
		}
		*f.dst = n
	}
	if env := c.StringSlice("env"); len(env) > 0 {
		merged := map[string]string{}
		for k, v := range spec.grants.Env {
			merged[k] = v
		}
		for _, kv := range env {
			k, v, ok := strings.Cut(kv, "=")
			if !ok || !validEnvName(k) || strings.ContainsRune(v, 0) {
				return nil, usageErrorf("invalid --env %q: want KEY=VALUE with KEY of letters, digits and _", kv)
			}
			merged[k] = v
		}
		spec.grants.Env = merged
	}
	for _, o := range runOptions {
		if err := o.apply(c, spec); err != nil {
			return nil, err
		}
	}

	input, err := readInput(c)
	if err != nil {
		return nil, err
	}
	spec.input = input

	spec.cacheDir = cacheDir(c)
	return spec, nil
}

// cacheFlags are the compiled-code cache flags of run and batch.
func cacheFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "cache-dir", Usage: "directory for compiled code (default: the user cache directory)"},
		&cli.BoolFlag{Name: "no-cache", Usage: "do not keep compiled code on disk"},
	}
}

// cacheDir is where compiled code is kept: --cache-dir, nothing with
// --no-cache, else blockhost's directory in the user cache directory.
func cacheDir(c *cli.Context) string {
	switch {
	case c.Bool("no-cache"):
		return ""
	case c.IsSet("cache-dir"):
		return c.String("cache-dir")
	}
	if dir, err := os.UserCacheDir(); err == nil {
		return filepath.Join(dir, "blockhost")
	}
	return ""
}

func validEnvName(s string) bool {
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

// readInput reads --input: literal text, @FILE, or - for stdin.
func readInput(c *cli.Context) ([]byte, error) {
	v := c.String("input")
	var r io.Reader
	var what string
	switch {
	case !c.IsSet("input"):
		return nil, nil
	case v == "-":
		r, what = streamsOf(c).in, "standard input"
	case strings.HasPrefix(v, "@"):
		f, err := os.Open(v[1:])
		if err != nil {
			return nil, usageErrorf("cannot read --input: %v", err)
		}
		defer f.Close()
		r, what = f, v[1:]
	default:
		return []byte(v), nil
	}
	b, err := io.ReadAll(io.LimitReader(r, maxInput+1))
	if err != nil {
		return nil, usageErrorf("cannot read --input from %s: %v", what, err)
	}
	if len(b) > maxInput {
		return nil, usageErrorf("--input from %s is larger than %d MiB", what, maxInput>>20)
	}
	return b, nil
}
