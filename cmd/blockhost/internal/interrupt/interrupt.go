// Package interrupt catches Ctrl-C and SIGTERM from the first moments of
// the process. It has no dependencies outside the standard library and a
// path that sorts early, so its init runs before those of the heavy
// packages (engines, cgo), which can take hundreds of milliseconds: a
// signal in that window is kept in C rather than killing the process
// before any result or output file exists.
package interrupt

import (
	"os"
	"os/signal"
	"syscall"
)

// C receives SIGINT and SIGTERM; it holds the first two until main reads
// them.
var C = make(chan os.Signal, 2)

func init() {
	signal.Notify(C, os.Interrupt, syscall.SIGTERM)
	// A write to a closed pipe returns EPIPE instead of killing the
	// process, so that `blockhost batch ... | head -1` ends with
	// blockhost's own exit code, not 141.
	signal.Ignore(syscall.SIGPIPE)
}

// Stop stops catching the signals.
func Stop() { signal.Stop(C) }
