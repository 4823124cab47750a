package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestBatch_logLinesAboveProgressBar runs batch with standard error on a
// real pseudo-terminal, so that it draws its progress bar, and with a
// block that logs one line per step (examples/hello). Every log line must
// be printed above the bar, which is then redrawn: on the final screen
// each log line starts at the beginning of its line and has no piece of a
// bar before or after it, and no bar is left once the batch is over.
//
// The terminal is util-linux's script(1) (Debian's bsdutils, essential),
// not a pty library: no new dependency for one test.
func TestBatch_logLinesAboveProgressBar(t *testing.T) {
	scriptPath, err := exec.LookPath("script")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("script (util-linux, Debian's bsdutils) is needed for a pseudo-terminal: %v", err)
		}
		t.Skipf("script (util-linux, Debian's bsdutils) not found, no pseudo-terminal: %v", err)
	}
	hello := helloModule(t)
	const steps = 100
	lines := make([]string, steps)
	for i := range lines {
		lines[i] = fmt.Sprintf(`{"step_id":"s%d","block":%q,"input":{"name":"n%d"}}`, i, hello, i)
	}
	path := writeLines(t, lines)
	dir := t.TempDir()
	out := dir + "/out.jsonl"
	// A wide terminal makes the bar (about 120 columns) longer than a log
	// line (about 90), so that a log line written over the bar without
	// erasing it leaves the bar's tail behind, where the screen shows it.
	// A fresh --cache-dir makes the first compile take several ticks of
	// the bar, so that it is drawn before the first log line.
	cli := strings.Join([]string{shellQuote(os.Args[0]), "--log-level", "info", "batch",
		"--cache-dir", shellQuote(dir + "/cache"), "--concurrency", "1", "-o", shellQuote(out), shellQuote(path)}, " ")
	cmd := exec.Command(scriptPath, "-qfec", "stty cols 200 rows 50; "+cli, "/dev/null")
	cmd.Env = append(os.Environ(), "BLOCKHOST_TEST_MAIN=1")
	var raw, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &raw, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// A hang-catcher, not a latency bound.
	killer := time.AfterFunc(3*time.Minute, func() { cmd.Process.Kill() })
	defer killer.Stop()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("script: %v; stderr:\n%s\noutput:\n%q", err, stderr.String(), raw.String())
	}

	const erase = "\r\033[K"
	// The test tests something only if the bar was drawn and a log line
	// came while it was on screen.
	bar, log := strings.Index(raw.String(), erase+"["), strings.Index(raw.String(), "greeting")
	if bar < 0 || log < bar {
		t.Fatalf("no progress bar drawn before a log line; the test saw:\n%q", raw.String())
	}

	// A log line that took the bar's place is followed by the bar, redrawn
	// at once rather than at the next tick.
	replaced := regexp.MustCompile(`\r\033\[K\d{4}-\d\d-\d\dT[^\r\n]*\r?\n`)
	for _, loc := range replaced.FindAllStringIndex(raw.String(), -1) {
		if rest := raw.String()[loc[1]:]; !strings.HasPrefix(rest, "[") {
			t.Errorf("the bar was not redrawn after the log line %q; then came %q", raw.String()[loc[0]:loc[1]], rest[:min(len(rest), 40)])
			break
		}
	}

	screen := renderScreen(raw.String())
	logLine := regexp.MustCompile(`^\d{4}-\d\d-\d\dT\S+ \[INFO\] +blockhost\.guest: greeting: block=\S+ step_id=s\d+ name=n\d+$`)
	barPiece := regexp.MustCompile(`\[[#.]{5,}|ok \d+ +error \d+|queue \d+`)
	greetings := 0
	for i, l := range screen {
		if strings.Contains(l, "greeting") {
			greetings++
			if !logLine.MatchString(l) {
				t.Errorf("screen line %d is not a whole log line at the start of a line: %q", i+1, l)
			}
		}
		if barPiece.MatchString(l) {
			t.Errorf("screen line %d holds a stale progress bar: %q", i+1, l)
		}
	}
	if greetings != steps {
		t.Errorf("%d log lines on the screen, want %d (one per step):\n%s", greetings, steps, strings.Join(screen, "\n"))
	}
	if t.Failed() {
		t.Logf("raw output:\n%q", raw.String())
	}
}

// renderScreen plays what a terminal does with the output: text overwrites
// the line from the cursor, \r returns to its start, \n goes to the next
// line, ESC [ K erases to its end. Other escape sequences are dropped. It
// returns the lines on the screen, trailing blanks trimmed.
func renderScreen(s string) []string {
	screen := [][]rune{nil}
	row, col := 0, 0
	rs := []rune(s)
	for i := 0; i < len(rs); i++ {
		switch c := rs[i]; {
		case c == '\r':
			col = 0
		case c == '\n':
			row++
			if row == len(screen) {
				screen = append(screen, nil)
			}
		case c == '\033' && i+1 < len(rs) && rs[i+1] == '[':
			j := i + 2
			for j < len(rs) && (rs[j] < '@' || rs[j] > '~') {
				j++
			}
			if j < len(rs) && rs[j] == 'K' && col < len(screen[row]) {
				screen[row] = screen[row][:col]
			}
			i = j
		case c < ' ':
		default:
			for len(screen[row]) <= col {
				screen[row] = append(screen[row], ' ')
			}
			screen[row][col] = c
			col++
		}
	}
	lines := make([]string, 0, len(screen))
	for _, l := range screen {
		lines = append(lines, strings.TrimRight(string(l), " "))
	}
	return lines
}

// shellQuote quotes s for sh.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
