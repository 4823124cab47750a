// Package sdktest runs a block's handler in-process, in an ordinary go
// test, against a fake host that keeps blockhost's rules: the same result
// codes, the same caps and the same order of deciding a step's status
// (docs/abi.md §4–§6). The handler runs through sdk.Run itself, so the
// code that reads input, writes output, records errors and encodes log
// records is the code that runs under the real host.
//
// The fake host keeps these caps: output 1 MiB (Config.OutputLimit),
// error messages cut at 4096 bytes, log messages cut at 4096 bytes and
// marked truncated, 64 KiB of log messages and values per step and 100 log
// records a second with bursts of 100, with records over a cap dropped and
// counted. It checks every log key/value block as the host does.
//
// It grants what the host grants by default — nothing — and what a
// Config grants the way the host would: the handler sees only the
// environment variables of Config.Env (the process environment is
// swapped for the step), directories are read-only unless marked
// ReadWrite, and an HTTP request reaches Config.HTTP only when one of
// Config.HTTPGrants allows it, matched by scheme, host, port, method and
// path as the host matches a manifest's grant; any other is denied with
// the host's detail. A test of this package holds that matching to the
// host's (package host/httpcap). Names are not resolved: a grant's name
// that resolves to a private address is the host's business.
//
// What it cannot do is interrupt a handler: a native handler that ignores
// its context's deadline runs until it returns, and the step then ends as
// timeout. Memory caps and traps belong to WebAssembly and are not
// simulated.
//
// The package is for native builds (GOOS other than wasip1); under wasip1
// it is empty, since there the sdk talks to the real host.
package sdktest
