// Command blockhost runs WebAssembly blocks: one step with `blockhost run`,
// and builds Go blocks with `blockhost build`. It only wires flags to the
// host package; everything it does is available to Go programs there.
//
// Exit codes of `blockhost run`: 0 success, 1 error, 124 timeout,
// 130 cancelled, 2 bad usage or configuration, 3 results could not be
// written (quietly, when standard output is a pipe whose reader is gone).
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"syscall"

	"github.com/hashicorp/go-hclog"
	"github.com/urfave/cli/v2"

	"github.com/blockhost/blockhost/cmd/blockhost/internal/interrupt"
	"github.com/blockhost/blockhost/host"
)

// Exit codes.
const (
	exitSuccess   = 0
	exitError     = 1
	exitUsage     = 2
	exitOutput    = 3
	exitTimeout   = 124
	exitCancelled = 130
)

// exitErr carries an exit code out of a command; a non-empty msg is
// printed on stderr as one line.
type exitErr struct {
	code int
	msg  string
}

func (e *exitErr) Error() string { return e.msg }

func usageErrorf(format string, args ...any) error {
	return &exitErr{code: exitUsage, msg: fmt.Sprintf(format, args...)}
}

// signals turns the signals that package interrupt catches from the
// process's first moments into a cancellation with a result, not a kill.
var signals = notifySignals()

func main() {
	code := runMain(signals.ctx, os.Args, os.Stdin, os.Stdout, os.Stderr)
	signals.stop()
	os.Exit(code)
}

// interrupts is what Ctrl-C and SIGTERM do: the first cancels ctx, with a
// cause naming the signal (so results say cancelled, never timeout); the
// second closes second, on which batch stops reading its input.
type interrupts struct {
	ctx    context.Context
	second chan struct{}
	stop   func()
}

type interruptsKey struct{}

func notifySignals() *interrupts {
	sigs := interrupt.C
	ctx, cancel := context.WithCancelCause(context.Background())
	in := &interrupts{second: make(chan struct{})}
	in.ctx = context.WithValue(ctx, interruptsKey{}, in)
	done := make(chan struct{})
	go func() {
		select {
		case sig := <-sigs:
			cancel(fmt.Errorf("%w: received %v", host.ErrCancelled, sig))
		case <-done:
			return
		}
		select {
		case <-sigs:
			close(in.second)
		case <-done:
		}
	}()
	in.stop = func() {
		interrupt.Stop()
		close(done)
		cancel(nil)
	}
	return in
}

// secondInterrupt is closed on the second Ctrl-C; nil (never) when ctx
// does not come from main.
func secondInterrupt(ctx context.Context) <-chan struct{} {
	if in, ok := ctx.Value(interruptsKey{}).(*interrupts); ok {
		return in.second
	}
	return nil
}

// outputFailed is the exit of a command whose results cannot be written:
// exit code 3, with a message unless the reader of a pipe went away (as
// `| head -1` does), which is no error worth a line.
func outputFailed(err error) error {
	if errors.Is(err, syscall.EPIPE) {
		return &exitErr{code: exitOutput}
	}
	return &exitErr{code: exitOutput, msg: "writing results: " + err.Error()}
}

// streams are the process's standard streams, injectable for tests.
type streams struct {
	in       io.Reader
	out, err io.Writer
}

func streamsOf(c *cli.Context) streams { return c.App.Metadata["streams"].(streams) }

// runMain runs the CLI and returns the process exit code.
func runMain(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	logs := newLogSink(stderr)
	app := newApp(streams{in: stdin, out: stdout, err: logs})
	var closers []io.Closer
	app.Metadata["closers"] = &closers
	err := app.RunContext(ctx, args)
	for _, cl := range closers {
		if cerr := cl.Close(); cerr != nil && err == nil {
			err = &exitErr{code: exitOutput, msg: "closing: " + cerr.Error()}
		}
	}
	logs.Close()
	if err == nil {
		return exitSuccess
	}
	var ee *exitErr
	if errors.As(err, &ee) {
		if ee.msg != "" {
			fmt.Fprintln(stderr, "blockhost: "+oneLine(ee.msg))
		}
		return ee.code
	}
	// Anything else urfave/cli returns is a usage error: an unknown flag, a
	// flag without its value, a bad duration.
	fmt.Fprintln(stderr, "blockhost: "+oneLine(err.Error()))
	return exitUsage
}

// oneLine joins a multi-line message (manifest diagnostics) with "; ".
func oneLine(s string) string {
	return strings.Join(strings.Fields(strings.ReplaceAll(strings.TrimSpace(s), "\n", " ; ")), " ")
}

// onUsageError turns a flag-parsing failure into one line and exit code 2,
// instead of the help text urfave/cli prints by default.
func onUsageError(c *cli.Context, err error, _ bool) error {
	where := "blockhost"
	if c != nil && c.Command != nil && c.Command.Name != "" && c.Command.Name != "blockhost" {
		where += " " + c.Command.Name
	}
	return usageErrorf("%v%s (see '%s --help')", err, usageHint(c, err), where)
}

func newApp(s streams) *cli.App {
	cmds := []*cli.Command{runCommand(), batchCommand(), buildCommand(), initCommand(),
		serveCommand(), workerCommand(), submitCommand(), decideCommand(),
		inspectCommand(), keygenCommand(), signCommand(), verifyCommand(), auditCommand(), cacheCommand(), versionCommand()}
	for _, c := range cmds {
		c.OnUsageError = onUsageError
		c.Description = strings.TrimSpace(c.Description + "\n" + globalsNote)
		if c.Name == "run" {
			c.Description += "\n" + builtinsNote()
		}
	}
	return &cli.App{
		Name:      "blockhost",
		Usage:     "run WebAssembly blocks in a sandbox",
		Reader:    s.in,
		Writer:    s.out,
		ErrWriter: s.err,
		Metadata:  map[string]any{"streams": s},
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "log-level", Value: "info", Usage: "trace, debug, info, warn, error or off"},
			&cli.StringFlag{Name: "log-format", Value: "text", Usage: "text or json"},
		},
		Commands: cmds,
		Action: func(c *cli.Context) error {
			if c.NArg() > 0 {
				return usageErrorf("unknown command %q (commands: %s; see 'blockhost --help')", c.Args().First(), commandNames(c.App.Commands))
			}
			return cli.ShowAppHelp(c)
		},
		Version: buildVersion(),
		// A repeatable flag's value is taken whole: "GET,POST https://…"
		// is one --allow-http grant, "A=1,2" one --env variable.
		DisableSliceFlagSeparator: true,
		// Errors are printed once, by runMain, as one line.
		ExitErrHandler: func(*cli.Context, error) {},
		OnUsageError:   onUsageError,
	}
}

// commandNames lists the commands by name, as help shows them.
func commandNames(cmds []*cli.Command) string {
	names := make([]string, 0, len(cmds))
	for _, c := range cmds {
		if !c.Hidden && c.Name != "help" {
			names = append(names, c.Name)
		}
	}
	return strings.Join(names, ", ")
}

// newLogger builds the logger from the global flags. Logs go to stderr so
// that stdout carries only the result.
func newLogger(c *cli.Context, out io.Writer) (hclog.Logger, error) {
	lvl := strings.ToLower(c.String("log-level"))
	level := hclog.LevelFromString(lvl)
	if level == hclog.NoLevel {
		return nil, usageErrorf("invalid --log-level %q: want trace, debug, info, warn, error or off", c.String("log-level"))
	}
	format := c.String("log-format")
	if format != "text" && format != "json" {
		return nil, usageErrorf("invalid --log-format %q: want text or json", format)
	}
	return hclog.New(&hclog.LoggerOptions{
		Name:       "blockhost",
		Level:      level,
		Output:     out,
		JSONFormat: format == "json",
	}), nil
}
