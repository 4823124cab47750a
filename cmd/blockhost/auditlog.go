package main

import (
	"io"
	"math"

	"github.com/urfave/cli/v2"

	"github.com/blockhost/blockhost/host/auditlog"
	"github.com/blockhost/blockhost/host/manifest"
)

// auditLogFlags are --audit-log and its rotation, of run, batch, worker
// and serve.
func auditLogFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "audit-log", Usage: "append the audit log (JSONL: each step's grants, every capability use and " +
			"denial, each step's end) to `FILE`, or - for standard output; separate from the log (see docs/security.md)"},
		&cli.StringFlag{Name: "audit-log-max-size", Usage: "rotate --audit-log FILE once a record would take it past `SIZE` " +
			"(such as 100MiB): FILE becomes FILE.1, FILE.1 FILE.2, and so on; unset, FILE is never rotated"},
		&cli.IntFlag{Name: "audit-log-keep", Value: 5, Usage: "older files kept by --audit-log-max-size; the oldest past `N` is removed"},
	}
}

// openAuditLog opens --audit-log, or returns nil when it is not set. The
// file is opened for appending, created with mode 0600 if need be and
// never truncated: an audit log is kept, not replaced; with
// --audit-log-max-size it is rotated (auditlog.File). It is closed when
// the command is done (closeAtExit).
func openAuditLog(c *cli.Context) (*auditlog.Log, error) {
	path := c.String("audit-log")
	var maxSize uint64
	if s := c.String("audit-log-max-size"); s != "" {
		var err error
		if maxSize, err = manifest.ParseSize(s); err != nil || maxSize == 0 || maxSize > math.MaxInt64 {
			return nil, usageErrorf("invalid --audit-log-max-size %q: want a size such as 100MiB", s)
		}
		if path == "" || path == "-" {
			return nil, usageErrorf("--audit-log-max-size needs --audit-log FILE")
		}
	}
	switch path {
	case "":
		return nil, nil
	case "-":
		return auditlog.New(streamsOf(c).out), nil
	}
	f, err := auditlog.OpenFile(path, int64(maxSize), c.Int("audit-log-keep"))
	if err != nil {
		return nil, usageErrorf("invalid --audit-log: %v", err)
	}
	closeAtExit(c, f)
	return auditlog.New(f), nil
}

// closeAtExit closes cl once the command has returned (runMain).
func closeAtExit(c *cli.Context, cl io.Closer) {
	p := c.App.Metadata["closers"].(*[]io.Closer)
	*p = append(*p, cl)
}
