package main

import (
	"strings"
	"testing"
)

// Issue 10, point 14: help that fits, says each default once, lists the
// built-in blocks and the global flags; `help` and `--version` exist; flag
// mistakes say what would have helped.
func TestHelp(t *testing.T) {
	// Every command's help: a flag defined twice on a command panics here.
	helps := [][]string{{"--help"}, {"help"}}
	for _, c := range newApp(streams{}).Commands {
		helps = append(helps, []string{c.Name, "--help"})
	}
	for _, args := range helps {
		r := runCLI(t, "", args...)
		if r.code != 0 {
			t.Fatalf("%v: exit %d", args, r.code)
		}
		for _, line := range strings.Split(r.stdout, "\n") {
			if len(line) > helpWidth {
				t.Errorf("%v: line of %d columns: %q", args, len(line), line)
			}
			if strings.Count(line, "(default") > 1 || strings.Contains(line, "(default:") {
				t.Errorf("%v: %q shows a default twice or in urfave's form", args, line)
			}
		}
	}
	run := runCLI(t, "", "run", "--help").stdout
	for _, want := range []string{"http.request", "fs.blob_put", "--log-level", "DURATION", "SIZE"} {
		if !strings.Contains(run, want) {
			t.Errorf("run --help lacks %q", want)
		}
	}
	if r := runCLI(t, "", "--version"); r.code != 0 || !strings.Contains(r.stdout, "blockhost") {
		t.Errorf("--version: exit %d %q", r.code, r.stdout)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"run", "--log-level", "debug", "x.wasm"}, "global flag"},
		{[]string{"run", "--timeout", "5", "x.wasm"}, "5s"},
		{[]string{"run", "--memory", "1TiB", "x.wasm"}, "MiB"},
		{[]string{"--log-level", "off", "run", "fs.blob_get", "--timeout", "1s"}, "warning: --timeout"},
	} {
		if r := runCLI(t, "", tc.args...); !strings.Contains(r.stderr, tc.want) {
			t.Errorf("%v: stderr %q does not say %q", tc.args, r.stderr, tc.want)
		}
	}
}
