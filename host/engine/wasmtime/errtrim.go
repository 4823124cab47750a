//go:build cgo

package wasmtime

import "strings"

// trimError turns one of wasmtime's errors into one line for people.
// wasmtime formats its errors as Rust's anyhow does: a context line, a
// "Caused by:" list with one cause per line (numbered when there are
// several, a cause's own continuation lines indented further), and, in
// builds that capture one, a "Stack backtrace:" of the engine's native
// frames, which says nothing about the module. The result keeps the
// context and the causes, joined with ": ", and drops the backtrace.
func trimError(err error) string {
	msg := err.Error()
	if i := strings.Index(msg, "Stack backtrace:"); i >= 0 {
		msg = msg[:i]
	}
	var parts []string
	inCauses := false
	for _, line := range strings.Split(msg, "\n") {
		trimmed := strings.TrimSpace(line)
		switch {
		case trimmed == "":
			continue
		case trimmed == "Caused by:":
			inCauses = true
			continue
		}
		indent := len(line) - len(strings.TrimLeft(line, " \t"))
		if inCauses && len(parts) > 0 && (indent > 4 || strings.ContainsAny(trimmed[:1], "]})")) {
			// A continuation of the cause above: a multi-line value, or the
			// line that closes it.
			parts[len(parts)-1] += trimmed
			continue
		}
		if inCauses {
			trimmed = stripCauseNumber(trimmed)
		}
		parts = append(parts, trimmed)
	}
	if len(parts) == 0 {
		return strings.TrimSpace(err.Error())
	}
	return strings.Join(parts, ": ")
}

// stripCauseNumber drops the "N: " anyhow puts before each of several
// causes.
func stripCauseNumber(s string) string {
	i := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	if i > 0 && strings.HasPrefix(s[i:], ": ") {
		return s[i+2:]
	}
	return s
}
