package sqlcap_test

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"testing"

	"github.com/blockhost/blockhost/abi"
	"github.com/blockhost/blockhost/host/capability/capabilitytest"
	"github.com/blockhost/blockhost/host/sqlcap"
)

// TestCapability_hostFunctions calls the sql_* functions as a guest
// would, on a memory of its own: results, held result, bounds, details and
// audit events.
func TestCapability_hostFunctions(t *testing.T) {
	ctx := context.Background()
	g := engines[0].grant(t, sqlcap.ModeReadOnly)
	set, err := sqlcap.NewSet([]sqlcap.Grant{g})
	if err != nil {
		t.Fatal(err)
	}
	c := sqlcap.Capability{}
	step := capabilitytest.NewStep()
	st, err := c.Open(ctx, step, set)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	mem := make(capabilitytest.Memory, 1<<16)
	put := func(off uint32, s string) (uint64, uint64) { copy(mem[off:], s); return uint64(off), uint64(len(s)) }
	u32 := func(off uint32) uint32 { return binary.LittleEndian.Uint32(mem[off:]) }
	call := func(name string, args ...uint64) abi.Result {
		return capabilitytest.Call(ctx, c, st, mem, name, args...)
	}
	lastErr := func() abi.Error {
		var e abi.Error
		if r := call(abi.FuncSQLLastError, 8192, 4096, 16); r != abi.ResultOK {
			t.Fatalf("sql_last_error: %s", r)
		}
		json.Unmarshal(mem[8192:8192+u32(16)], &e)
		return e
	}

	// Nothing held yet.
	if r := call(abi.FuncSQLResult, 4096, 4096, 16); r != abi.ResultNotFound {
		t.Errorf("sql_result before a query: %s", r)
	}
	p, n := put(1024, `{"database":"app","statement":"SELECT id FROM items WHERE id = ?","params":[2]}`)
	if r := call(abi.FuncSQLQuery, p, n, 16); r != abi.ResultOK {
		t.Fatalf("sql_query: %s %+v", r, lastErr())
	}
	size := u32(16)
	// Too small a buffer: the length, limit, and the result is kept.
	if r := call(abi.FuncSQLResult, 4096, uint64(size-1), 20); r != abi.ResultLimit || u32(20) != size {
		t.Errorf("sql_result into %d bytes: %s, n=%d", size-1, r, u32(20))
	}
	if r := call(abi.FuncSQLResult, 4096, uint64(size), 20); r != abi.ResultOK {
		t.Fatalf("sql_result: %s", r)
	}
	if got := string(mem[4096 : 4096+size]); got != `{"columns":["id"],"rows":[{"id":2}],"row_count":1}` {
		t.Errorf("result %s", got)
	}
	if r := call(abi.FuncSQLResult, 4096, 4096, 16); r != abi.ResultNotFound {
		t.Errorf("sql_result twice: %s", r)
	}
	if ev := step.Events[len(step.Events)-1]; ev.Capability != "sql" || ev.Op != "query" || ev.Target != "app" || ev.Denied {
		t.Errorf("audit event %+v", ev)
	}

	// Refusals, each with its detail and, for a denial, an audit event.
	for _, c := range []struct {
		req  string
		fn   string
		r    abi.Result
		code abi.Code
	}{
		{`{"database":"nope","statement":"SELECT 1"}`, abi.FuncSQLQuery, abi.ResultDenied, abi.CodePermissionDenied},
		{`{"database":"app","statement":"DELETE FROM items"}`, abi.FuncSQLExec, abi.ResultDenied, abi.CodePermissionDenied},
		{`{"database":"app","statement":"SELEC 1"}`, abi.FuncSQLQuery, abi.ResultInvalid, abi.CodeInvalidInput},
		{`{"database":"app","statement":"SELECT 1","params":{"a":1}}`, abi.FuncSQLQuery, abi.ResultInvalid, abi.CodeInvalidInput},
		{`{"database":"app","statement":"SELECT 1","dsn":"x"}`, abi.FuncSQLQuery, abi.ResultInvalid, abi.CodeInvalidInput},
		{`not json`, abi.FuncSQLExec, abi.ResultInvalid, abi.CodeInvalidInput},
	} {
		p, n := put(1024, c.req)
		if r := call(c.fn, p, n, 16); r != c.r {
			t.Errorf("%s %s: %s, want %s", c.fn, c.req, r, c.r)
			continue
		}
		if e := lastErr(); e.Code != c.code {
			t.Errorf("%s %s: detail %+v, want %s", c.fn, c.req, e, c.code)
		}
	}
	if ev := step.Events[len(step.Events)-1]; !ev.Denied || ev.Op != "exec" && ev.Op != "query" {
		// The last refusal above is a malformed request, which names no
		// database; the denial before it was audited.
		found := false
		for _, e := range step.Events {
			found = found || e.Denied && e.Target == "nope"
		}
		if !found {
			t.Errorf("no audit event for the denied database: %+v", step.Events)
		}
	}
	// Pointers out of bounds.
	if r := call(abi.FuncSQLQuery, 1<<20, 10, 16); r != abi.ResultInvalid {
		t.Errorf("request out of bounds: %s", r)
	}
	p, n = put(1024, `{"database":"app","statement":"SELECT 1"}`)
	if r := call(abi.FuncSQLQuery, p, n, 1<<20); r != abi.ResultInvalid {
		t.Errorf("n_ptr out of bounds: %s", r)
	}
	if r := call(abi.FuncSQLExec, p, n, 1<<20); r != abi.ResultInvalid {
		t.Errorf("affected_ptr out of bounds: %s", r)
	}
	if r := call(abi.FuncSQLQuery, p, abi.MaxSQLRequest+1, 16); r != abi.ResultLimit {
		t.Errorf("request over the cap: %s", r)
	}
}

// TestCapability_noGrant: a step without databases gets a state whose
// calls are denied.
func TestCapability_noGrant(t *testing.T) {
	ctx := context.Background()
	c := sqlcap.Capability{}
	st, err := c.Open(ctx, capabilitytest.NewStep(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	mem := make(capabilitytest.Memory, 4096)
	req := `{"database":"app","statement":"SELECT 1"}`
	copy(mem[100:], req)
	if r := capabilitytest.Call(ctx, c, st, mem, abi.FuncSQLQuery, 100, uint64(len(req)), 16); r != abi.ResultDenied {
		t.Errorf("got %s, want denied", r)
	}
	if _, err := c.Open(ctx, capabilitytest.NewStep(), "not a set"); err == nil {
		t.Error("a grant of the wrong type was accepted")
	}
}
