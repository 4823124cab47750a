package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/hashicorp/go-hclog"
	"github.com/urfave/cli/v2"

	"github.com/blockhost/blockhost/abi"
	"github.com/blockhost/blockhost/host/executor"
	"github.com/blockhost/blockhost/host/job"
	"github.com/blockhost/blockhost/host/manifest"
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
			&cli.StringFlag{Name: "input", Aliases: []string{"i"}, Usage: "step input: JSON `TEXT`, @FILE to read a file, or - for stdin"},
			&cli.StringFlag{Name: "manifest", Aliases: []string{"m"}, Usage: "block manifest `FILE` (HCL, or JSON by .json extension)"},
			&cli.StringFlag{Name: "step-id", Usage: "step identifier `ID` (default a new random one)"},
		}, stepFlags("run")...),
		Action: runAction,
	}
}

// stepOption is a group of step flags owned by one feature (a
// capability, the retry policy): its flags, and how they set the
// overrides every step of `run` and `batch` gets (job.Settings). Features
// register from init in their own file, so adding one does not touch
// this file.
type stepOption struct {
	flags []cli.Flag
	apply func(c *cli.Context, s *job.Settings) error
	// commands, when set, limits the option to these commands: the
	// others may use its flag names for flags of their own (worker's
	// --config is its configuration file, not an Extism plugin's config).
	commands []string
}

// on reports whether the option belongs to the command named cmd.
func (o stepOption) on(cmd string) bool {
	return len(o.commands) == 0 || slices.Contains(o.commands, cmd)
}

var stepOptions []stepOption

func registerStepOption(o stepOption) { stepOptions = append(stepOptions, o) }

func optionFlags(cmd string) []cli.Flag {
	var fs []cli.Flag
	for _, o := range stepOptions {
		if o.on(cmd) {
			fs = append(fs, o.flags...)
		}
	}
	return fs
}

// stepFlags are the flags of run and batch that set every step: the
// engine, limits and environment here; grants and the retry policy from
// the registered options; the compiled-code cache.
func stepFlags(cmd string) []cli.Flag {
	return append([]cli.Flag{
		&cli.DurationFlag{Name: "timeout", Usage: "attempt timeout of every step, a `DURATION` such as 5s (default 30s)"},
		&cli.StringFlag{Name: "memory", Usage: "linear memory cap of every step, a `SIZE` such as 64MiB (default 64MiB)"},
		&cli.StringFlag{Name: "output-limit", Usage: "output cap of every step, a `SIZE` such as 1MiB (default 1MiB)"},
		&cli.StringFlag{Name: "engine", Usage: "WebAssembly engine `NAME`: wazero or wasmtime (default wazero)"},
		&cli.StringSliceFlag{Name: "env", Usage: "grant the guest an environment variable `KEY=VALUE` (repeatable)"},
	}, append(optionFlags(cmd), append(cacheFlags(), auditLogFlags()...)...)...)
}

// stepSettings reads the step flags into the overrides of a job.Service:
// what a flag sets wins over the request and the manifest.
func stepSettings(c *cli.Context) (job.Settings, error) {
	var s job.Settings
	s.Engine = c.String("engine")
	if c.IsSet("timeout") {
		if s.Limits.Timeout = c.Duration("timeout"); s.Limits.Timeout <= 0 {
			return s, usageErrorf("invalid --timeout %s: must be positive", s.Limits.Timeout)
		}
	}
	for _, f := range []struct {
		flag string
		dst  *uint64
	}{{"memory", &s.Limits.Memory}, {"output-limit", &s.Limits.Output}} {
		if !c.IsSet(f.flag) {
			continue
		}
		n, err := manifest.ParseSize(c.String(f.flag))
		if err != nil {
			return s, usageErrorf("invalid --%s: %v (sizes: a number with B, KB, KiB, MB, MiB, GB or GiB, such as 64MiB)", f.flag, err)
		}
		if n == 0 || (f.flag == "memory" && n > manifest.MaxMemory) {
			return s, usageErrorf("invalid --%s %q: must be more than 0 and at most 4GiB", f.flag, c.String(f.flag))
		}
		*f.dst = n
	}
	if env := c.StringSlice("env"); len(env) > 0 {
		s.Env = map[string]string{}
		for _, kv := range env {
			k, v, ok := strings.Cut(kv, "=")
			if !ok || !job.ValidEnvName(k) || strings.ContainsRune(v, 0) {
				return s, usageErrorf("invalid --env %q: want KEY=VALUE with KEY of letters, digits and _", kv)
			}
			s.Env[k] = v
		}
	}
	for _, o := range stepOptions {
		if !o.on(c.Command.Name) {
			continue
		}
		if err := o.apply(c, &s); err != nil {
			return s, err
		}
	}
	return s, nil
}

// newService builds the job service of a command from its flags.
func newService(c *cli.Context, s job.Settings, pool executor.PoolConfig, logger hclog.Logger) (*job.Service, error) {
	audit, err := openAuditLog(c)
	if err != nil {
		return nil, err
	}
	svc, err := job.New(job.NewConfig().
		WithOverrides(s).
		WithAuditLog(audit).
		WithCacheDir(cacheDir(c)).
		WithLogger(logger).
		WithPool(pool).
		WithMaxInput(maxInput))
	if err != nil {
		var ce *job.ConfigError
		if errors.As(err, &ce) && ce.Field == "engine" {
			return nil, usageErrorf("invalid --engine: %s", ce.Problem)
		}
		return nil, usageErrorf("%v", err)
	}
	return svc, nil
}

func runAction(c *cli.Context) error {
	req, err := runRequest(c)
	if err != nil {
		return err
	}
	settings, err := stepSettings(c)
	if err != nil {
		return err
	}
	logger, err := newLogger(c, streamsOf(c).err)
	if err != nil {
		return err
	}
	svc, err := newService(c, settings, executor.PoolConfig{Concurrency: 1}, logger)
	if err != nil {
		return err
	}
	ctx := c.Context
	defer svc.Close(context.WithoutCancel(ctx))
	var res *abi.StepResult
	xr, err := svc.Resolve(ctx, req)
	switch {
	case err == nil:
		res = svc.Start(ctx, xr).Result()
	case ctx.Err() != nil:
		// Interrupted while compiling: still a result, cancelled.
		res = job.ErrorResult(req.StepID, req.Block+req.Manifest, context.Cause(ctx))
	default:
		return usageErrorf("%v", err)
	}

	out, err := json.MarshalIndent(res, "", "  ")
	if err != nil {
		return &exitErr{code: exitError, msg: "encoding the result: " + err.Error()}
	}
	if _, err := fmt.Fprintf(streamsOf(c).out, "%s\n", out); err != nil {
		return outputFailed(err)
	}
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

// runRequest is the request of `blockhost run`: the module or manifest,
// the guest's arguments, --input and --step-id.
func runRequest(c *cli.Context) (job.Request, error) {
	req := job.Request{StepID: c.String("step-id")}
	args := c.Args().Slice()
	if path := c.String("manifest"); path != "" {
		req.Manifest = path
		if len(args) > 0 {
			req.Args = args
		}
	} else {
		if len(args) == 0 {
			return req, usageErrorf("run: no module given (usage: blockhost run [flags] MODULE.wasm [ARGS...])")
		}
		req.Block = args[0]
		req.Args = args[1:]
		warnFlagsAfterModule(c, req.Args)
	}
	input, err := readInput(c)
	if err != nil {
		return req, err
	}
	if input != nil {
		req.InputBase64 = input
	}
	return req, nil
}

// cacheFlags are the compiled-code cache flags of run and batch.
func cacheFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "cache-dir", Usage: "`DIR` for compiled code (default the user cache directory)"},
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
