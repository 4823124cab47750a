package main

import (
	"context"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/urfave/cli/v2"

	"github.com/blockhost/blockhost/abi"
	"github.com/blockhost/blockhost/host"
	"github.com/blockhost/blockhost/host/executor"
	"github.com/blockhost/blockhost/host/manifest"
)

// The retry and deadline flags of `blockhost run` (and, as defaults for
// every step, of `blockhost batch`). A run goes through the executor's
// retry policy: execute in run.go calls runWithPolicy.
func init() {
	registerRunOption(runOption{flags: retryFlags(), apply: applyRetry})
}

func retryFlags() []cli.Flag {
	return []cli.Flag{
		&cli.IntFlag{Name: "max-attempts", Usage: "most attempts of a step, the first included; 1 never retries (default 3)"},
		&cli.DurationFlag{Name: "backoff-initial", Usage: "upper bound of the first wait between attempts (default 1s)"},
		&cli.Float64Flag{Name: "backoff-multiplier", Usage: "growth of the wait bound after each wait, at least 1 (default 2)"},
		&cli.DurationFlag{Name: "backoff-max", Usage: "cap of every wait, a dependency's Retry-After included (default 30s)"},
		&cli.DurationFlag{Name: "total-deadline", Usage: "bound of all attempts and waits of a step (default 5m)"},
		&cli.StringSliceFlag{Name: "non-retryable", Usage: "never retry this error `CODE`, a name or number (repeatable)"},
	}
}

// retrySettings are a step's retry policy and total deadline after the
// manifest and the flags are merged; zero fields take the executor's
// defaults.
type retrySettings struct {
	policy        executor.RetryPolicy
	totalDeadline time.Duration
	queueTimeout  time.Duration
	priority      executor.Priority
	logger        hclog.Logger
}

type retryKey struct{}

// applyRetry merges the manifest's schedule with the flags and hands the
// result to execute through the command's context.
func applyRetry(c *cli.Context, spec *runSpec) error {
	if c.Command == nil || c.Command.Name != "run" {
		return nil // batch resolves its policies per line
	}
	var sched manifest.Schedule
	if spec.manifest != nil {
		sched = spec.manifest.Schedule
	}
	rs, err := retryFromFlags(c, sched)
	if err != nil {
		return err
	}
	if rs.logger, err = newLogger(c); err != nil {
		return err
	}
	c.Context = context.WithValue(c.Context, retryKey{}, rs)
	return nil
}

// retryFromFlags returns the manifest's schedule with the flags over it.
func retryFromFlags(c *cli.Context, sched manifest.Schedule) (retrySettings, error) {
	rs := scheduleSettings(sched)
	if c.IsSet("max-attempts") {
		rs.policy.MaxAttempts = c.Int("max-attempts")
		if rs.policy.MaxAttempts < 1 {
			return rs, usageErrorf("invalid --max-attempts %d: must be at least 1 (the first attempt counts)", rs.policy.MaxAttempts)
		}
	}
	for _, f := range []struct {
		name string
		dst  *time.Duration
	}{{"backoff-initial", &rs.policy.Initial}, {"backoff-max", &rs.policy.MaxInterval}, {"total-deadline", &rs.totalDeadline}} {
		if c.IsSet(f.name) {
			if *f.dst = c.Duration(f.name); *f.dst <= 0 {
				return rs, usageErrorf("invalid --%s %s: must be positive", f.name, *f.dst)
			}
		}
	}
	if c.IsSet("backoff-multiplier") {
		rs.policy.Multiplier = c.Float64("backoff-multiplier")
	}
	for _, s := range c.StringSlice("non-retryable") {
		code, err := abi.ParseCode(s)
		if err != nil {
			return rs, usageErrorf("invalid --non-retryable %q: not an error code name or number", s)
		}
		rs.policy.NonRetryable = append(rs.policy.NonRetryable, code)
	}
	if err := rs.policy.Or(executor.DefaultRetryPolicy).Validate(); err != nil {
		return rs, usageErrorf("invalid retry flags: %v", err)
	}
	return rs, nil
}

// scheduleSettings converts a manifest's schedule.
func scheduleSettings(s manifest.Schedule) retrySettings {
	rs := retrySettings{
		policy: executor.RetryPolicy{
			MaxAttempts: s.Retry.MaxAttempts, Initial: s.Retry.BackoffInitial, Multiplier: s.Retry.BackoffMultiplier,
			MaxInterval: s.Retry.BackoffMax, NonRetryable: s.Retry.NonRetryable,
		},
		totalDeadline: s.TotalDeadline,
		queueTimeout:  s.QueueTimeout,
	}
	if s.Priority != "" {
		rs.priority, _ = executor.ParsePriority(s.Priority) // the manifest checked it
	}
	return rs
}

// runWithPolicy runs one step through an executor of one worker, so that
// `blockhost run` retries, waits and gives up exactly as a batch or a
// server would.
func runWithPolicy(ctx context.Context, r host.Runner, step host.Step) *abi.StepResult {
	rs, _ := ctx.Value(retryKey{}).(retrySettings)
	cfg := executor.NewConfig().
		WithPool(executor.DefaultPool, executor.PoolConfig{Concurrency: 1, QueueSize: 0}).
		WithRetryPolicy(rs.policy).
		WithTotalDeadline(rs.totalDeadline).
		WithLogger(rs.logger)
	e, err := executor.New(cfg)
	if err != nil {
		// The flags were validated; this is a bug, reported as the step's
		// error rather than a crash.
		return &abi.StepResult{StepID: step.ID, Block: r.Name(), Status: abi.StatusError,
			Error: abi.NewError(abi.CodeInternalError, abi.ClassPermanent, err.Error())}
	}
	defer e.Close(context.WithoutCancel(ctx))
	return e.Run(ctx, executor.Request{Runner: r, Step: step})
}
