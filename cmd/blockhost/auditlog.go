package main

import (
	"io"
	"os"

	"github.com/urfave/cli/v2"

	"github.com/blockhost/blockhost/host/auditlog"
)

// auditLogFlag is --audit-log of run, batch, worker and serve.
func auditLogFlag() cli.Flag {
	return &cli.StringFlag{Name: "audit-log", Usage: "append the audit log (JSONL: each step's grants, every capability use and " +
		"denial, each step's end) to `FILE`, or - for standard output; separate from the log (see docs/security.md)"}
}

// openAuditLog opens --audit-log, or returns nil when it is not set. The
// file is opened for appending, created with mode 0600 if need be and
// never truncated: an audit log is kept, not replaced. It is closed when
// the command is done (closeAtExit).
func openAuditLog(c *cli.Context) (*auditlog.Log, error) {
	path := c.String("audit-log")
	switch path {
	case "":
		return nil, nil
	case "-":
		return auditlog.New(streamsOf(c).out), nil
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
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
