package host_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/blockhost/blockhost/abi"
	"github.com/blockhost/blockhost/host"
	"github.com/blockhost/blockhost/host/auditlog"
	"github.com/blockhost/blockhost/host/fscap"
	"github.com/blockhost/blockhost/internal/testwasm"
)

// auditRecords parses an audit log, failing on any line that is not one
// JSON object.
func auditRecords(t *testing.T, raw []byte) []map[string]any {
	t.Helper()
	var out []map[string]any
	sc := bufio.NewScanner(bytes.NewReader(raw))
	for sc.Scan() {
		var r map[string]any
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("audit line %q: %v", sc.Text(), err)
		}
		out = append(out, r)
	}
	return out
}

// textLine is a record of hclog's text format: time, [LEVEL], the
// logger's name and the message.
var textLine = regexp.MustCompile(`^\S+ \[(TRACE|DEBUG|INFO|WARN|ERROR)\] +(\S+): `)

// TestAuditLog_forgedRecord: a block with no grants writes the exact text
// of the host's HTTP request record — through the log call with the
// host's keys and JSON's "@module", with a line break and a second forged
// line, on stderr and on stdout. None of it reaches the audit log, and in
// the general log, text and JSON, every one of its records is marked as
// the guest's by the logger's name, which the guest cannot set. Before
// the guest's records had a logger of their own, they were named
// "blockhost.block" like the host's, and the JSON "@module" was the
// guest's to replace.
func TestAuditLog_forgedRecord(t *testing.T) {
	wasm := testwasm.WAT(t, filepath.Join("testdata", "forger.wat"))
	for _, format := range []string{"text", "json"} {
		t.Run(format, func(t *testing.T) {
			var logs, audit bytes.Buffer
			logger := hclog.New(&hclog.LoggerOptions{Name: "blockhost", Output: &logs, JSONFormat: format == "json", Level: hclog.Trace})
			rt, err := host.NewRuntime(context.Background(),
				host.NewRuntimeConfig().WithLogger(logger).WithAuditLog(auditlog.New(&audit)))
			if err != nil {
				t.Fatal(err)
			}
			defer rt.Close(context.Background())
			blk, err := rt.Load(context.Background(), "forger", wasm)
			if err != nil {
				t.Fatal(err)
			}
			if res := blk.Run(context.Background(), host.Step{ID: "s1"}); res.Status != abi.StatusSuccess {
				t.Fatalf("step: %s %+v", res.Status, res.Error)
			}

			recs := auditRecords(t, audit.Bytes())
			if len(recs) != 2 || recs[0]["event"] != auditlog.EventStepStart || recs[1]["event"] != auditlog.EventStepEnd {
				t.Fatalf("audit log of a step with no grants:\n%s", audit.Bytes())
			}
			if bytes.Contains(audit.Bytes(), []byte("github")) || bytes.Contains(audit.Bytes(), []byte("http request")) {
				t.Fatalf("the guest's text reached the audit log:\n%s", audit.Bytes())
			}

			forged := 0
			for _, line := range strings.Split(strings.TrimSuffix(logs.String(), "\n"), "\n") {
				module := ""
				if format == "json" {
					var r map[string]any
					if err := json.Unmarshal([]byte(line), &r); err != nil {
						t.Fatalf("log line %q: %v", line, err)
					}
					module, _ = r["@module"].(string)
				} else {
					m := textLine.FindStringSubmatch(line)
					if m == nil {
						t.Fatalf("a log line that is not a record of its own: %q", line)
					}
					module = m[2]
				}
				if strings.Contains(line, "github") {
					forged++
					if module != "blockhost.guest" {
						t.Errorf("a guest's record not marked as the guest's (%q): %s", module, line)
					}
				}
			}
			if forged != 4 {
				t.Fatalf("%d records carry the guest's text, want 4 (log call twice, stderr, stdout):\n%s", forged, logs.String())
			}
		})
	}
}

// TestAuditLog_stepRecords: a step's first record says what it may do —
// the module's digest, the effective grants as each capability describes
// them, the names of its environment variables and never their values,
// its limits and what the caller told (tenant, ids, extended grants) —
// and its last its status and error code.
func TestAuditLog_stepRecords(t *testing.T) {
	var audit bytes.Buffer
	rt, err := host.NewRuntime(context.Background(), host.NewRuntimeConfig().WithAuditLog(auditlog.New(&audit)))
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close(context.Background())
	blk := load(t, rt, "echo")
	pol := policy(t, loopbackGrant(t, "api", "http://127.0.0.1:8080/v1/"))
	step := host.Step{ID: "s1", Input: []byte(`{"a":1}`),
		Grants: host.Grants{Env: map[string]string{"TOKEN": "hunter2"}, HTTP: pol,
			FS: []fscap.Grant{{Name: "data", HostDir: t.TempDir(), GuestPath: "/data", ReadOnly: true}}},
		Limits: host.Limits{Timeout: 5 * time.Second},
		Audit:  host.StepAudit{Tenant: "acme", IDs: map[string]string{"job": "j1"}, ExtendedGrants: []string{"--allow-http http://127.0.0.1:8080/"}}}
	if res := blk.Run(context.Background(), step); res.Status != abi.StatusSuccess {
		t.Fatalf("step: %+v", res)
	}
	bad := load(t, rt, "errorset")
	res := bad.Run(context.Background(), host.Step{ID: "s2"})

	if bytes.Contains(audit.Bytes(), []byte("hunter2")) {
		t.Fatalf("an environment value reached the audit log:\n%s", audit.Bytes())
	}
	recs := auditRecords(t, audit.Bytes())
	if len(recs) != 4 {
		t.Fatalf("%d records:\n%s", len(recs), audit.Bytes())
	}
	start, end := recs[0], recs[1]
	grants, _ := start["grants"].(map[string]any)
	if start["event"] != auditlog.EventStepStart || start["step_id"] != "s1" || start["block"] != "echo" ||
		start["module"] != blk.Digest() || start["tenant"] != "acme" || start["ids"].(map[string]any)["job"] != "j1" ||
		start["extended_grants"].([]any)[0] != "--allow-http http://127.0.0.1:8080/" {
		t.Errorf("step_start: %v", start)
	}
	if env, _ := grants["env"].([]any); len(env) != 1 || env[0] != "TOKEN" {
		t.Errorf("env grants: %v", grants["env"])
	}
	if hs, _ := grants["http"].([]any); len(hs) != 1 || hs[0].(map[string]any)["name"] != "api" || hs[0].(map[string]any)["host"] != "127.0.0.1" {
		t.Errorf("http grants: %v", grants["http"])
	}
	if fs, _ := grants["fs"].([]any); len(fs) != 1 || fs[0].(map[string]any)["guest"] != "/data" || fs[0].(map[string]any)["read_only"] != true {
		t.Errorf("fs grants: %v", grants["fs"])
	}
	if lim, _ := start["limits"].(map[string]any); lim["timeout_ms"] != float64(5000) || lim["memory"] != float64(host.DefaultLimits.Memory) {
		t.Errorf("limits: %v", start["limits"])
	}
	if end["event"] != auditlog.EventStepEnd || end["status"] != "success" || end["code"] != nil {
		t.Errorf("step_end: %v", end)
	}
	if recs[2]["event"] != auditlog.EventStepStart || recs[2]["grants"] != nil {
		t.Errorf("step_start with no grants: %v", recs[2])
	}
	if e := recs[3]; e["status"] != "error" || e["code"] != float64(res.Error.Code) || e["code_name"] != res.Error.Code.Name() {
		t.Errorf("step_end of a failed step: %v (result %+v)", e, res.Error)
	}
	if strings.Contains(audit.String(), res.Error.Message) {
		t.Errorf("the block's error message reached the audit log:\n%s", audit.Bytes())
	}
}
