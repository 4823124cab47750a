package main

import (
	"time"

	"github.com/urfave/cli/v2"

	"github.com/blockhost/blockhost/abi"
	"github.com/blockhost/blockhost/host/executor"
	"github.com/blockhost/blockhost/host/job"
)

// The retry and deadline flags of every step of run and batch; like every
// step flag they win over the request's and the manifest's settings.
func init() {
	registerStepOption(stepOption{flags: retryFlags(), apply: applyRetry})
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

// applyRetry reads the retry flags into the overrides.
func applyRetry(c *cli.Context, s *job.Settings) error {
	p := &s.Retry
	if c.IsSet("max-attempts") {
		if p.MaxAttempts = c.Int("max-attempts"); p.MaxAttempts < 1 {
			return usageErrorf("invalid --max-attempts %d: must be at least 1 (the first attempt counts)", p.MaxAttempts)
		}
	}
	for _, f := range []struct {
		name string
		dst  *time.Duration
	}{{"backoff-initial", &p.Initial}, {"backoff-max", &p.MaxInterval}, {"total-deadline", &s.TotalDeadline}} {
		if c.IsSet(f.name) {
			if *f.dst = c.Duration(f.name); *f.dst <= 0 {
				return usageErrorf("invalid --%s %s: must be positive", f.name, *f.dst)
			}
		}
	}
	if c.IsSet("backoff-multiplier") {
		p.Multiplier = c.Float64("backoff-multiplier")
	}
	for _, v := range c.StringSlice("non-retryable") {
		code, err := abi.ParseCode(v)
		if err != nil {
			return usageErrorf("invalid --non-retryable %q: not an error code name or number", v)
		}
		p.NonRetryable = append(p.NonRetryable, code)
	}
	if err := p.Or(executor.DefaultRetryPolicy).Validate(); err != nil {
		return usageErrorf("invalid retry flags: %v", err)
	}
	return nil
}
