package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestRun_auditLog: --audit-log appends the step's records to the file,
// separate from the log and the result, keeping what the file held; the
// guest's forged host record is in neither the audit log nor the result.
// With "-" the records go to standard output; a directory is a usage
// error naming the flag.
func TestRun_auditLog(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	if err := os.WriteFile(path, []byte(`{"event":"earlier"}`+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r := runCLI(t, "", "--log-level", "info", "run", "--no-cache", "--audit-log", path, "--env", "SECRET=hunter2", fixture(t, "forger"))
	if r.code != exitSuccess {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var events []string
	sc := bufio.NewScanner(strings.NewReader(string(raw)))
	for sc.Scan() {
		var rec map[string]any
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			t.Fatalf("audit line %q: %v", sc.Text(), err)
		}
		events = append(events, rec["event"].(string))
		if rec["event"] == "step_start" && (rec["module"] != r.res.Module || rec["step_id"] != r.res.StepID) {
			t.Errorf("step_start %v, result %+v", rec, r.res)
		}
	}
	if strings.Join(events, ",") != "earlier,step_start,step_end" {
		t.Fatalf("audit events %v:\n%s", events, raw)
	}
	if strings.Contains(string(raw), "github") || strings.Contains(string(raw), "hunter2") {
		t.Fatalf("guest text or an env value in the audit log:\n%s", raw)
	}
	for _, line := range strings.Split(strings.TrimSpace(r.stderr), "\n") {
		if _, rest, _ := strings.Cut(line, "]  "); strings.Contains(line, "github") && !strings.HasPrefix(rest, "blockhost.guest: ") {
			t.Errorf("the general log does not mark the guest's record: %s", line)
		}
	}

	var out, errb bytes.Buffer
	code := runMain(context.Background(), []string{"blockhost", "--log-level", "off", "run", "--no-cache", "--audit-log", "-", fixture(t, "echo")},
		strings.NewReader(""), &out, &errb)
	if code != exitSuccess || !strings.Contains(out.String(), `"event":"step_start"`) || !strings.Contains(out.String(), `"status": "success"`) {
		t.Fatalf("--audit-log -: exit %d, stdout %s", code, out.String())
	}
	r = runCLI(t, "", "run", "--no-cache", "--audit-log", t.TempDir(), fixture(t, "echo"))
	if r.code != exitUsage || !strings.Contains(r.stderr, "--audit-log") {
		t.Fatalf("a directory: exit %d, stderr %s", r.code, r.stderr)
	}
}

// TestRun_auditLogBuiltin: a built-in block's steps are audited as a
// WebAssembly block's are — start, every capability use and refusal, end
// — through the same capability sessions.
func TestRun_auditLogBuiltin(t *testing.T) {
	url, _ := httpTestServer(t)
	allow := "GET " + url + "/ allow_ranges=127.0.0.1/32"
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	records := func() []map[string]any {
		t.Helper()
		raw, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		var recs []map[string]any
		for _, line := range strings.Split(strings.TrimSpace(string(raw)), "\n") {
			var rec map[string]any
			if err := json.Unmarshal([]byte(line), &rec); err != nil {
				t.Fatalf("audit line %q: %v", line, err)
			}
			recs = append(recs, rec)
		}
		return recs
	}

	r := runCLI(t, "", "--log-level", "off", "run", "--audit-log", path, "--allow-http", allow,
		"--input", `{"url":"`+url+`/hello?name=ana"}`, "http.request")
	if r.code != exitSuccess {
		t.Fatalf("allowed request: exit %d: %s", r.code, r.stderr)
	}
	r = runCLI(t, "", "--log-level", "off", "run", "--max-attempts", "1", "--audit-log", path, "--allow-http", allow,
		"--input", `{"url":"http://127.0.0.2:9/"}`, "http.request")
	if r.code == exitSuccess {
		t.Fatalf("a request outside the grant succeeded: %s", r.stdout)
	}
	var got []string
	for _, rec := range records() {
		s := rec["event"].(string)
		if rec["block"] != "http.request" {
			t.Errorf("record of block %v: %v", rec["block"], rec)
		}
		if s == "capability" {
			s += ":" + rec["op"].(string)
			if rec["denied"] == true {
				s += ":denied"
			}
		}
		got = append(got, s)
	}
	want := "step_start,capability:request,step_end,step_start,capability:request:denied,step_end"
	if strings.Join(got, ",") != want {
		t.Fatalf("audit events %v, want %s", got, want)
	}
}

// TestBatch_auditLogRotation: with --audit-log-max-size the audit log of
// a batch is rotated into FILE.1, FILE.2 … at most --audit-log-keep of
// them, every file within the size and made of whole records, the newest
// step's end in FILE; a size without a file, or a size that is not one,
// is a usage error naming the flag.
func TestBatch_auditLogRotation(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "audit.jsonl")
	var lines strings.Builder
	for i := range 30 {
		fmt.Fprintf(&lines, "{\"step_id\":\"s%02d\",\"block\":%q,\"input\":{\"n\":%d}}\n", i, fixture(t, "echo"), i)
	}
	in := filepath.Join(dir, "steps.jsonl")
	if err := os.WriteFile(in, []byte(lines.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	const maxSize = 1500
	r := runCLI(t, "", "--log-level", "off", "batch", "--no-cache", "--concurrency", "1", "-o", filepath.Join(dir, "out.jsonl"),
		"--audit-log", path, "--audit-log-max-size", "1500B", "--audit-log-keep", "2", in)
	if r.code != exitSuccess {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	var last string
	for _, p := range []string{path + ".2", path + ".1", path} {
		raw, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if len(raw) > maxSize {
			t.Errorf("%s: %d bytes, over %d", p, len(raw), maxSize)
		}
		for _, line := range strings.Split(strings.TrimSuffix(string(raw), "\n"), "\n") {
			var rec map[string]any
			if err := json.Unmarshal([]byte(line), &rec); err != nil {
				t.Fatalf("%s: %q is not a whole record: %v", p, line, err)
			}
			last = fmt.Sprint(rec["event"], " ", rec["step_id"])
		}
	}
	if last != "step_end s29" {
		t.Errorf("the newest record is %q, want step_end s29", last)
	}
	if _, err := os.Stat(path + ".3"); !os.IsNotExist(err) {
		t.Errorf("a third older file: %v", err)
	}

	for _, args := range [][]string{
		{"--audit-log-max-size", "1MiB"},
		{"--audit-log", path, "--audit-log-max-size", "lots"},
		{"--audit-log", path, "--audit-log-max-size", "1MiB", "--audit-log-keep", "0"},
	} {
		r := runCLI(t, "", append(append([]string{"--log-level", "off", "batch", "--no-cache"}, args...), in)...)
		if r.code != exitUsage || !strings.Contains(r.stderr, "audit-log") {
			t.Errorf("%v: exit %d, %s", args, r.code, r.stderr)
		}
	}
}
