package main

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/blockhost/blockhost/host/audit"
	"github.com/blockhost/blockhost/host/manifest"
	"github.com/blockhost/blockhost/plugins"
)

// audit lint and audit diff: what a reviewer runs on a manifest before
// approving it, and on a change to one (docs/security.md).

func auditCommand() *cli.Command {
	return &cli.Command{
		Name:  "audit",
		Usage: "review manifests without running them: lint, diff, rules",
		Subcommands: []*cli.Command{
			{
				Name:      "lint",
				Usage:     "report grants and settings a reviewer should look at twice",
				ArgsUsage: "MANIFEST...",
				Description: "One finding per line: MANIFEST: SEVERITY ID WHERE: MESSAGE, most serious first.\n" +
					"Exit 1 when a finding is at or above --fail-on, 2 when a manifest cannot be read.",
				Flags: []cli.Flag{
					&cli.StringFlag{Name: "fail-on", Value: "high", Usage: "exit 1 on a finding of this `LEVEL` or above: info, low, medium, high, or none"},
					&cli.BoolFlag{Name: "json", Usage: "print the findings as a JSON array"},
					&cli.StringSliceFlag{Name: "trusted-key", Usage: "public key `FILE` signatures must be made with (repeatable); without one a signature is checked for integrity only"},
					&cli.StringFlag{Name: "cache-dir", Usage: "directory for the code compiled to read modules' imports (default: none)"},
				},
				Action:       auditLint,
				OnUsageError: onUsageError,
			},
			{
				Name:      "diff",
				Usage:     "say what a change to a manifest grants or takes away",
				ArgsUsage: "OLD NEW",
				Description: "One change per line: + grants, - revokes, ~ neither. Environment values are not shown.\n" +
					"Exit 0, or with --exit-code 1 when the change grants anything.",
				Flags: []cli.Flag{
					&cli.BoolFlag{Name: "json", Usage: "print the changes as a JSON array"},
					&cli.BoolFlag{Name: "exit-code", Usage: "exit 1 when the change grants anything"},
				},
				Action:       auditDiff,
				OnUsageError: onUsageError,
			},
			{
				Name:  "rules",
				Usage: "list the lint rules: ID, severity, name, what it finds",
				Action: func(c *cli.Context) error {
					for _, r := range audit.Rules() {
						fmt.Fprintf(streamsOf(c).out, "%s  %-6s  %-28s  %s\n", r.ID, r.Severity, r.Name, r.Summary)
					}
					return nil
				},
			},
		},
	}
}

func auditLint(c *cli.Context) error {
	if c.NArg() == 0 {
		return usageErrorf("audit lint: no manifest given (usage: blockhost audit lint [--fail-on LEVEL] MANIFEST...)")
	}
	failOn, never := audit.High, false
	if v := c.String("fail-on"); strings.EqualFold(v, "none") {
		never = true
	} else {
		s, err := audit.ParseSeverity(v)
		if err != nil {
			return usageErrorf("invalid --fail-on: %v", err)
		}
		failOn = s
	}
	cfg := audit.NewConfig().WithCacheDir(c.String("cache-dir")).WithBuiltins(func(name string) bool {
		_, ok := plugins.Lookup(name)
		return ok
	})
	if paths := c.StringSlice("trusted-key"); len(paths) > 0 {
		keys, err := trustedKeys(paths)
		if err != nil {
			return err
		}
		cfg = cfg.WithTrustedKeys(keys...)
	}
	findings := []audit.Finding{}
	for _, path := range c.Args().Slice() {
		fs, err := audit.LintFile(c.Context, cfg, path)
		if err != nil {
			return usageErrorf("audit lint: %v", err)
		}
		findings = append(findings, fs...)
	}
	out := streamsOf(c).out
	if c.Bool("json") {
		b, err := json.MarshalIndent(findings, "", "  ")
		if err != nil {
			return &exitErr{code: exitError, msg: err.Error()}
		}
		fmt.Fprintf(out, "%s\n", b)
	} else {
		counts := map[audit.Severity]int{}
		for _, f := range findings {
			fmt.Fprintln(out, f)
			counts[f.Severity]++
		}
		fmt.Fprintf(out, "%d findings: %d high, %d medium, %d low, %d info\n",
			len(findings), counts[audit.High], counts[audit.Medium], counts[audit.Low], counts[audit.Info])
	}
	if worst, any := audit.Worst(findings); any && !never && worst >= failOn {
		return &exitErr{code: exitError, msg: fmt.Sprintf("audit lint: findings of severity %s or above", failOn)}
	}
	return nil
}

func auditDiff(c *cli.Context) error {
	if c.NArg() != 2 {
		return usageErrorf("audit diff: want OLD and NEW (usage: blockhost audit diff OLD NEW)")
	}
	var ms [2]*manifest.Manifest
	for i, path := range c.Args().Slice() {
		m, err := manifest.ParseFile(path)
		if err != nil {
			return usageErrorf("audit diff: %v", err)
		}
		ms[i] = m
	}
	changes := audit.Diff(ms[0], ms[1])
	out := streamsOf(c).out
	if c.Bool("json") {
		if changes == nil {
			changes = []audit.Change{}
		}
		b, err := json.MarshalIndent(changes, "", "  ")
		if err != nil {
			return &exitErr{code: exitError, msg: err.Error()}
		}
		fmt.Fprintf(out, "%s\n", b)
	} else {
		for _, ch := range changes {
			fmt.Fprintln(out, ch)
		}
	}
	if c.Bool("exit-code") {
		for _, ch := range changes {
			if ch.Effect == audit.Grants {
				return &exitErr{code: exitError}
			}
		}
	}
	return nil
}
