package main

import (
	"fmt"
	"text/tabwriter"

	"github.com/urfave/cli/v2"

	"github.com/blockhost/blockhost/host/engine/cacheprune"
)

// cacheCommand is `blockhost cache`: for now, prune.
func cacheCommand() *cli.Command {
	return &cli.Command{
		Name:  "cache",
		Usage: "manage the directory of compiled code (the --cache-dir of other commands)",
		Subcommands: []*cli.Command{{
			Name:  "prune",
			Usage: "remove compiled code this build does not use, and stale staging files",
			Description: "Removes, in the cache directory, entries of older formats and of other engine versions or\n" +
				"configurations, the directories of engine versions this build does not have, and staging\n" +
				"files and directories older than --min-age; prints each with its size and why, then the\n" +
				"bytes freed. An entry this build uses is never removed, nor anything not blockhost's. It is\n" +
				"safe while other blockhost processes use the directory: one whose entry is removed compiles\n" +
				"the module again.",
			Flags: []cli.Flag{
				&cli.StringFlag{Name: "cache-dir", Usage: "the cache `DIR` (default the user cache directory's blockhost)"},
				&cli.DurationFlag{Name: "min-age", Value: cacheprune.DefaultMinAge, Usage: "remove staging files only when older than this"},
				&cli.BoolFlag{Name: "dry-run", Aliases: []string{"n"}, Usage: "list what would be removed; remove nothing"},
			},
			Action:       cachePruneAction,
			OnUsageError: onUsageError,
		}},
	}
}

func cachePruneAction(c *cli.Context) error {
	if c.NArg() > 0 {
		return usageErrorf("cache prune: unexpected arguments %v", c.Args().Slice())
	}
	if c.Duration("min-age") < 0 {
		return usageErrorf("invalid --min-age %s: must not be negative", c.Duration("min-age"))
	}
	dir := cacheDir(c) // run's: --cache-dir, else the user cache directory's
	if dir == "" {
		return usageErrorf("no --cache-dir given, and the user cache directory is unknown")
	}
	dry := c.Bool("dry-run")
	rep, err := cacheprune.Prune(dir, cacheprune.NewConfig().WithMinAge(c.Duration("min-age")).WithDryRun(dry))
	out := streamsOf(c).out
	verb := "removed"
	if dry {
		verb = "would remove"
	}
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	for _, r := range rep.Removed {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", verb, byteCount(r.Bytes), r.Path, r.Reason)
	}
	tw.Flush()
	summary := "%s: %d removed, freed %s (%d bytes)\n"
	if dry {
		summary = "%s: %d to remove, would free %s (%d bytes)\n"
	}
	fmt.Fprintf(out, summary, dir, len(rep.Removed), byteCount(rep.Bytes), rep.Bytes)
	if err != nil {
		return &exitErr{code: exitError, msg: fmt.Sprintf("cache prune: %v", err)}
	}
	return nil
}

// byteCount spells n in the largest binary unit it reaches, to one decimal.
func byteCount(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
