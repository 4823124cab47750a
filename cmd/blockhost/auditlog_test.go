package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
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
