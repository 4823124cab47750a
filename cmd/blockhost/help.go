package main

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/blockhost/blockhost/plugins"
)

// helpWidth bounds every line of --help.
const helpWidth = 100

func init() { cli.FlagStringer = flagString }

// flagString is one flag in --help: one placeholder named for the kind of
// value, one default (ours, from the usage text, or urfave's when the usage
// names none and it is not a zero value), and the usage wrapped so that no
// line passes helpWidth columns.
func flagString(f cli.Flag) string {
	df, ok := f.(cli.DocGenerationFlag)
	if !ok {
		return ""
	}
	usage := df.GetUsage()
	placeholder := ""
	if i := strings.IndexByte(usage, '`'); i >= 0 {
		if j := strings.IndexByte(usage[i+1:], '`'); j >= 0 {
			placeholder = usage[i+1 : i+1+j]
			usage = usage[:i] + placeholder + usage[i+1+j+1:]
		}
	}
	if df.TakesValue() && placeholder == "" {
		switch f.(type) {
		case *cli.DurationFlag:
			placeholder = "DURATION"
		case *cli.IntFlag, *cli.Float64Flag:
			placeholder = "N"
		default:
			placeholder = "VALUE"
		}
	}
	if !strings.Contains(usage, "(default") {
		if s := df.GetDefaultText(); s != "" && s != "0s" && s != "0" && s != `""` && s != "false" {
			usage += " (default " + s + ")"
		}
	}
	var names []string
	for _, n := range df.Names() {
		if len(n) == 1 {
			names = append(names, "-"+n)
		} else {
			names = append(names, "--"+n)
		}
	}
	head := strings.Join(names, ", ")
	if placeholder != "" {
		head += " " + placeholder
	}
	return head + "\t" + strings.Join(wrap(usage, 58), "\n\t")
}

// wrap breaks s into lines of at most width columns at spaces.
func wrap(s string, width int) []string {
	var lines []string
	line := ""
	for _, w := range strings.Fields(s) {
		if line != "" && len(line)+1+len(w) > width {
			lines = append(lines, line)
			line = ""
		}
		if line != "" {
			line += " "
		}
		line += w
	}
	return append(lines, line)
}

// globalsNote is added to each command's description.
const globalsNote = "Global flags go before the command: blockhost [--log-level L] [--log-format F] COMMAND ..."

// builtinsNote lists the built-in blocks for run's help.
func builtinsNote() string {
	var b strings.Builder
	b.WriteString("Built-in blocks (run by name, or named by a manifest's module):")
	for _, p := range plugins.All() {
		fmt.Fprintf(&b, "\n  %-14s %s", p.Name, p.Summary)
	}
	return b.String()
}

var flagValueErr = regexp.MustCompile(`invalid value "([^"]*)" for flag -([a-z-]+)`)

// usageHint adds what would have helped to a flag-parsing error: a global
// flag given after the command, a duration without a unit.
func usageHint(c *cli.Context, err error) string {
	msg := err.Error()
	for _, g := range []string{"log-level", "log-format"} {
		if strings.Contains(msg, "flag provided but not defined: -"+g) {
			return fmt.Sprintf("; --%s is a global flag: put it before the command (blockhost --%s VALUE COMMAND ...)", g, g)
		}
	}
	if m := flagValueErr.FindStringSubmatch(msg); m != nil && c != nil && c.Command != nil {
		for _, f := range c.Command.Flags {
			if _, ok := f.(*cli.DurationFlag); ok && f.Names()[0] == m[2] {
				return fmt.Sprintf("; --%s takes a duration with its unit, such as 500ms, 5s, 2m or 1h30m", m[2])
			}
		}
	}
	return ""
}

// warnFlagsAfterModule warns, on stderr, about guest arguments that are
// flags of `run`: they go to the guest, which is rarely what was meant.
func warnFlagsAfterModule(c *cli.Context, args []string) {
	known := map[string]bool{}
	for _, f := range c.Command.Flags {
		for _, n := range f.Names() {
			known[n] = true
		}
	}
	for _, a := range args {
		name, _, _ := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if strings.HasPrefix(a, "-") && known[name] {
			fmt.Fprintf(streamsOf(c).err, "blockhost: warning: %s comes after the module, so it is passed to the guest; "+
				"put blockhost's flags before the module\n", a)
		}
	}
}
