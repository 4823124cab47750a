package worker

import (
	"encoding/json"
	"testing"
)

// TestSQLInput: sql.query's job fields pass on as its input, and the
// dependency is the database the job names — never a connection string.
func TestSQLInput(t *testing.T) {
	for _, c := range []struct {
		fields, input, dep string
	}{
		{`{"database":"shop","query":"SELECT 1","parameters":[1],"timeout_ms":5}`, `{"database":"shop","parameters":[1],"query":"SELECT 1"}`, "sql:shop"},
		{`{"connection_string":"shop","query":"SELECT 1"}`, `{"connection_string":"shop","query":"SELECT 1"}`, "sql:shop"},
		{`{"connection_string":"postgres://u:pw@db/x","query":"SELECT 1"}`, `{"connection_string":"postgres://u:pw@db/x","query":"SELECT 1"}`, ""},
		{`{"query":"SELECT 1"}`, `{"query":"SELECT 1"}`, ""},
	} {
		var fields map[string]json.RawMessage
		if err := json.Unmarshal([]byte(c.fields), &fields); err != nil {
			t.Fatal(err)
		}
		in, _, dep, err := sqlInput(Job{Type: "sql.query", Fields: fields})
		if err != nil || string(in) != c.input || dep != c.dep {
			t.Errorf("%s: input %s dep %q err %v; want %s %q", c.fields, in, dep, err, c.input, c.dep)
		}
	}
	if _, _, _, err := sqlInput(Job{Type: "sql.query", Fields: map[string]json.RawMessage{"database": json.RawMessage(`3`)}}); err == nil {
		t.Error("a database that is not a string was accepted")
	}
}
