package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/blockhost/blockhost/abi"
)

// Issue 10, point 1: an output that is the input is refused before
// anything is opened for writing: same path, a link, standard input.
func TestBatch_outputIsInput(t *testing.T) {
	path := writeLines(t, []string{`{"block":"x"}`})
	before, _ := os.ReadFile(path)
	link := filepath.Join(t.TempDir(), "link.jsonl")
	if err := os.Link(path, link); err != nil {
		t.Fatal(err)
	}
	sym := filepath.Join(t.TempDir(), "sym.jsonl")
	if err := os.Symlink(path, sym); err != nil {
		t.Fatal(err)
	}
	for _, out := range []string{path, link, sym} {
		r := runCLI(t, "", "--log-level", "off", "batch", "--no-cache", "-o", out, path)
		if r.code != exitUsage {
			t.Errorf("-o %s: exit %d, want 2; stderr %s", out, r.code, r.stderr)
		}
		if after, _ := os.ReadFile(path); string(after) != string(before) {
			t.Fatalf("-o %s: the input was changed to %q", out, after)
		}
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if code := runMain(t.Context(), []string{"blockhost", "--log-level", "off", "batch", "-o", path, "-"}, f, os.Stdout, os.Stderr); code != exitUsage {
		t.Errorf("-o the file on standard input: exit %d, want 2", code)
	}
}

// Issue 10, point 3: two inputs, max_attempts 0 and a repeated step_id
// are errors of their line, each under its own step ID.
func TestBatch_lineErrors(t *testing.T) {
	hello := helloModule(t)
	path := writeLines(t, []string{
		fmt.Sprintf(`{"step_id":"a","block":%q,"input":{"name":"ana"}}`, hello),
		fmt.Sprintf(`{"step_id":"two","block":%q,"input":{},"input_text":"x"}`, hello),
		fmt.Sprintf(`{"step_id":"zero","block":%q,"retry":{"max_attempts":0}}`, hello),
		fmt.Sprintf(`{"step_id":"a","block":%q}`, hello),
		fmt.Sprintf(`{"step_id":"mem","block":%q,"memory":"1MiB","output_limit":"1KiB","input":{"name":"bo"}}`, hello),
	})
	out := filepath.Join(t.TempDir(), "out.jsonl")
	r := runCLI(t, "", "--log-level", "off", "batch", "--no-cache", "-c", "1", "-o", out, path)
	if r.code != exitError {
		t.Fatalf("exit %d, want 1\n%s", r.code, r.stderr)
	}
	b, _ := os.ReadFile(out)
	res := parseResults(t, string(b))
	if len(res) != 5 {
		t.Fatalf("%d results, want 5:\n%s", len(res), b)
	}
	byID := map[string][]abi.StepResult{}
	for _, x := range res {
		byID[x.StepID] = append(byID[x.StepID], x)
	}
	for _, id := range []string{"two", "zero"} {
		if x := byID[id]; len(x) != 1 || x[0].Status != abi.StatusError || x[0].Error.Code != abi.CodeInvalidInput {
			t.Errorf("%s: %+v, want one invalid_input error", id, x)
		}
	}
	if x := byID["a"]; len(x) != 2 || (x[0].Status == abi.StatusSuccess) == (x[1].Status == abi.StatusSuccess) {
		t.Errorf("a: %+v, want one success and one error for the repeated step_id", x)
	}
	// 1MiB of memory is too little for a Go guest: the line's limit applies.
	if x := byID["mem"]; len(x) != 1 || x[0].Status == abi.StatusSuccess {
		t.Errorf("mem: %+v, want the line's 1MiB memory limit to stop the Go guest", x)
	}
}

// Issue 10, point 7: results that cannot be written stop the batch with
// exit 3, and the summary counts only what was stored.
func TestBatch_outputFull(t *testing.T) {
	if _, err := os.Stat("/dev/full"); err != nil {
		t.Skip("no /dev/full")
	}
	path := writeLines(t, []string{`{"block":"fs.blob_get"}`, `{"block":"fs.blob_get"}`})
	r := runCLI(t, "", "--log-level", "off", "batch", "--no-cache", "-o", "/dev/full", path)
	if r.code != exitOutput {
		t.Fatalf("exit %d, want %d\n%s", r.code, exitOutput, r.stderr)
	}
	if !strings.Contains(r.stderr, "0 results stored") || !strings.Contains(r.stderr, "writing results") {
		t.Errorf("summary does not say nothing was stored:\n%s", r.stderr)
	}
}

// Issue 10, point 8: --resume keeps the results, drops a line cut short,
// skips the lines that have a result and appends the rest.
func TestBatch_resume(t *testing.T) {
	path := writeLines(t, []string{
		`{"step_id":"s1","block":"fs.blob_get"}`,
		`{"step_id":"s2","block":"fs.blob_get"}`,
		`{"step_id":"s3","block":"fs.blob_get"}`,
	})
	out := filepath.Join(t.TempDir(), "out.jsonl")
	kept := `{"step_id":"s1","block":"fs.blob_get","status":"success","latency_ms":1,"attempts":1,"retries_used":0,"usage":{}}` + "\n"
	if err := os.WriteFile(out, []byte(kept+`{"step_id":"s2","blo`), 0o644); err != nil {
		t.Fatal(err)
	}
	r := runCLI(t, "", "--log-level", "off", "batch", "--no-cache", "--resume", "-o", out, path)
	if r.code != exitError {
		t.Fatalf("exit %d, want 1 (fs.blob_get without a grant fails)\n%s", r.code, r.stderr)
	}
	b, _ := os.ReadFile(out)
	if !strings.HasPrefix(string(b), kept) {
		t.Fatalf("the kept result is gone:\n%s", b)
	}
	res := parseResults(t, string(b))
	ids := map[string]int{}
	for _, x := range res {
		ids[x.StepID]++
	}
	if len(res) != 3 || ids["s1"] != 1 || ids["s2"] != 1 || ids["s3"] != 1 {
		t.Fatalf("results %v, want s1 kept and s2, s3 appended:\n%s", ids, b)
	}
	if r := runCLI(t, "", "batch", "--resume", path); r.code != exitUsage {
		t.Errorf("--resume without -o: exit %d, want 2", r.code)
	}
}

// Issue 10, point 10: usage errors exit 2 on run and batch alike.
func TestUsage_exitTwo(t *testing.T) {
	path := writeLines(t, []string{`{"block":"fs.blob_get"}`})
	for _, args := range [][]string{
		{"batch", "--engine", "v8", path},
		{"run", "--engine", "v8", "fs.blob_get"},
		{"batch", "--concurrency", "0", path},
		{"run", "--timeout", "5", "fs.blob_get"},
	} {
		if r := runCLI(t, "", args...); r.code != exitUsage {
			t.Errorf("%v: exit %d, want 2; stderr %s", args, r.code, r.stderr)
		}
	}
}

// TestUsage_unknownCommandListsEvery checks that the answer to an unknown
// command names every command there is, so none is missing from it.
func TestUsage_unknownCommandListsEvery(t *testing.T) {
	r := runCLI(t, "", "frobnicate")
	if r.code != exitUsage {
		t.Fatalf("exit %d, want 2; stderr %s", r.code, r.stderr)
	}
	for _, c := range newApp(streams{}).Commands {
		if !strings.Contains(r.stderr, c.Name) {
			t.Errorf("stderr does not name the command %q: %s", c.Name, r.stderr)
		}
	}
}
