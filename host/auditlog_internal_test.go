package host

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/blockhost/blockhost/abi"
	"github.com/blockhost/blockhost/host/auditlog"
	"github.com/blockhost/blockhost/host/engine"
	"github.com/blockhost/blockhost/host/fscap"
)

// TestAuditLog_capabilityEvents: every use and every refusal of a
// capability is one audit record, made in the one place (stepState.Audit)
// whatever the capability: HTTP with method, URL, grant, status, bytes and
// duration; files with operation, path, grant and bytes.
func TestAuditLog_capabilityEvents(t *testing.T) {
	url, _, p := httpServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "hello")
	}))
	var buf bytes.Buffer
	ts := newTestStep(t, "", Limits{})
	ts.st.audit = auditlog.New(&buf)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "in.txt"), []byte("data!"), 0o644); err != nil {
		t.Fatal(err)
	}
	g := Grants{HTTP: p, FS: []fscap.Grant{{Name: "work", HostDir: dir, GuestPath: "/d", ReadOnly: true}}}
	if err := ts.st.open(ts.ctx, g, &engine.RunConfig{}); err != nil {
		t.Fatal(err)
	}

	// HTTP: allowed, read to the end and closed; denied.
	n := ts.putHead(t, abi.HTTPRequest{URL: url + "/ok?token=secret"})
	if r := ts.hcall(t, abi.FuncHTTPRequest, headAt, n, 0, 0, respAt); r != abi.ResultOK {
		t.Fatalf("http_request = %s", r)
	}
	handle := uint64(ts.mem.u32(respAt))
	for ts.hcall(t, abi.FuncHTTPBodyRead, handle, bufAt, 4096, nAt) == abi.ResultOK && ts.mem.u32(nAt) > 0 {
	}
	ts.hcall(t, abi.FuncHTTPClose, handle)
	n = ts.putHead(t, abi.HTTPRequest{URL: "http://example.com/"})
	if r := ts.hcall(t, abi.FuncHTTPRequest, headAt, n, 0, 0, respAt); r != abi.ResultDenied {
		t.Fatalf("http_request out of the grant = %s", r)
	}
	// Files: a read; a write under the read-only grant; a path under none.
	path, pathLen := ts.fsPath("/d/in.txt")
	if r := ts.call(t, abi.FuncFSRead, path, pathLen, 0, pBuf, 100, pN); r != abi.ResultOK {
		t.Fatalf("fs_read = %s", r)
	}
	ts.mem.put(pData, "x")
	if r := ts.call(t, abi.FuncFSWrite, path, pathLen, pData, 1, 0); r != abi.ResultDenied {
		t.Fatalf("fs_write under a read-only grant = %s", r)
	}
	path, pathLen = ts.fsPath("/elsewhere/x")
	if r := ts.call(t, abi.FuncFSRead, path, pathLen, 0, pBuf, 100, pN); r != abi.ResultDenied {
		t.Fatalf("fs_read under no grant = %s", r)
	}
	ts.st.close()

	type rec struct {
		auditlog.Record
		Time string `json:"time"`
	}
	var got []rec
	for _, line := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		var r rec
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("%q: %v", line, err)
		}
		if r.Event != auditlog.EventCapability || r.StepID != testStepID || r.Block != testBlockName {
			t.Errorf("record without its step: %s", line)
		}
		got = append(got, r)
	}
	if len(got) != 5 {
		t.Fatalf("%d records, want 5:\n%s", len(got), buf.String())
	}
	want := []struct {
		capability, op, target, grant string
		denied                        bool
		bytes                         int64
	}{
		{"http", "request", url + "/ok", "srv", false, 5},
		{"http", "request", "http://example.com/", "", true, 0},
		{"fs", "read", "/d/in.txt", "work", false, 5},
		{"fs", "write", "/d/in.txt", "work", true, 0},
		{"fs", "read", "/elsewhere/x", "", true, 0},
	}
	for i, w := range want {
		r := got[i]
		if r.Capability != w.capability || r.Op != w.op || r.Target != w.target || r.Grant != w.grant || r.Denied != w.denied || r.Bytes != w.bytes {
			t.Errorf("record %d: %+v, want %+v", i, r.Record, w)
		}
		if w.denied && r.Reason == "" {
			t.Errorf("record %d: a denial without a reason", i)
		}
	}
	if got[0].Details["method"] != "GET" || got[0].Details["status"] != float64(200) || got[0].DurationMS == nil {
		t.Errorf("the request's record: %+v", got[0].Record)
	}
	if strings.Contains(buf.String(), "secret") {
		t.Errorf("a query value reached the audit log:\n%s", buf.String())
	}
}
