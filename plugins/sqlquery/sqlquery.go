// Package sqlquery is the built-in blocks sql.query and sql.exec: one
// parameterised statement on a database granted to the step.
//
// sql.query takes the original worker's input and gives its output:
//
//	{"database": "orders", "query": "SELECT id, total FROM orders WHERE customer = $1",
//	 "parameters": ["ana"]}
//	→ {"columns": ["id", "total"], "rows": [{"id": 1, "total": 12.5}], "row_count": 1}
//
// database names a database the operator granted (--allow-sql, or the
// manifest's sql section); it may be left out when exactly one is
// granted. The original's connection_string is accepted only as the name
// of a granted database, never as a connection string: a step's input
// never chooses where to connect. parameters is a JSON array of null,
// booleans, numbers and strings, one for each placeholder ($1, $2, … on
// PostgreSQL; ? or $1 on SQLite); they reach the database as values, apart
// from the statement. One statement per step.
//
// sql.exec takes the same input for a statement that returns no rows and
// outputs {"rows_affected": N}; under a read-only grant (the default) the
// database refuses any change, and the step fails with permission_denied.
//
// Both go through package sqlcap, exactly as a WebAssembly block's sql_*
// host calls do: the same grants, read-only, timeouts, caps and error
// classes (docs/capabilities.md, "SQL").
package sqlquery

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/blockhost/blockhost/abi"
	"github.com/blockhost/blockhost/host"
	"github.com/blockhost/blockhost/host/capability"
	"github.com/blockhost/blockhost/host/sqlcap"
	"github.com/blockhost/blockhost/plugins"
)

// Names of the blocks.
const (
	QueryName = "sql.query"
	ExecName  = "sql.exec"
)

func init() {
	plugins.Register(plugins.Plugin{Name: QueryName, Summary: "one parameterised query on a granted database", Run: runQuery, Dependency: Dependency})
	plugins.Register(plugins.Plugin{Name: ExecName, Summary: "one parameterised statement that changes a granted database", Run: runExec, Dependency: Dependency})
}

// Dependency names the database a step's input names, or the one granted
// when the input names none, as the dependency of the executor's circuit
// breaker and retry budget: sqlcap.Dependency, "sql:NAME". It is empty
// when the input names no database by a valid name (a connection string is
// never one: it may hold a password); the step then fails on its own.
func Dependency(step host.Step) string {
	var named struct {
		Database         string `json:"database"`
		ConnectionString string `json:"connection_string"`
	}
	if json.Unmarshal(step.Input, &named) != nil {
		return ""
	}
	name := cmp.Or(named.Database, named.ConnectionString)
	if name == "" {
		if set, _ := step.Grants.Caps[sqlcap.Name].(*sqlcap.Set); set != nil {
			if names := set.Names(); len(names) == 1 {
				name = names[0]
			}
		}
	}
	if sqlcap.ValidName(name) != nil {
		return ""
	}
	return sqlcap.Dependency(name)
}

func runQuery(ctx context.Context, call *host.Call) ([]byte, error) {
	start := time.Now()
	out, err := Query(ctx, databasesOf(call), call.Step.Input)
	audit(call, "query", start, int64(len(out)), err)
	return out, err
}

func runExec(ctx context.Context, call *host.Call) ([]byte, error) {
	start := time.Now()
	out, err := Exec(ctx, databasesOf(call), call.Step.Input)
	audit(call, "exec", start, 0, err)
	return out, err
}

// audit records the statement in the audit log, as the host does for a
// WebAssembly block's sql_query and sql_exec: the database named, never
// the statement or its parameters; a refusal by grant as denied.
func audit(call *host.Call, op string, start time.Time, n int64, err error) {
	if call.Audit == nil {
		return
	}
	var named struct {
		Database         string `json:"database"`
		ConnectionString string `json:"connection_string"`
	}
	_ = json.Unmarshal(call.Step.Input, &named) // a bad input is the step's error already
	db := cmp.Or(named.Database, named.ConnectionString)
	ev := capability.Event{Capability: sqlcap.Name, Op: op, Target: db, Grant: db, Bytes: n, Duration: time.Since(start)}
	var ae *abi.Error
	switch {
	case err == nil:
	case errors.As(err, &ae) && ae.Code == abi.CodePermissionDenied:
		ev.Denied, ev.Reason, ev.Grant = true, ae.Code.Name(), ""
	case errors.As(err, &ae):
		ev.Error = ae.Code.Name()
	default:
		ev.Error = abi.CodeExecutionFailed.Name()
	}
	call.Audit(ev)
}

// databasesOf returns the step's SQL grant, nil when it has none.
func databasesOf(call *host.Call) *sqlcap.Set {
	set, _ := call.Step.Grants.Caps[sqlcap.Name].(*sqlcap.Set)
	return set
}

// Request is the input of both blocks.
type Request struct {
	// Database names a granted database.
	Database string `json:"database,omitempty"`
	// ConnectionString is the original worker's field, accepted only as
	// the name of a granted database.
	ConnectionString string `json:"connection_string,omitempty"`
	// Query is the statement; Statement is accepted for it too.
	Query     string `json:"query,omitempty"`
	Statement string `json:"statement,omitempty"`
	// Parameters are the statement's values, a JSON array.
	Parameters json.RawMessage `json:"parameters,omitempty"`
}

// ExecResult is sql.exec's output.
type ExecResult struct {
	RowsAffected int64 `json:"rows_affected"`
}

// Query runs sql.query's input on the databases granted to the step.
func Query(ctx context.Context, dbs *sqlcap.Set, input []byte) ([]byte, error) {
	db, req, err := prepare(QueryName, dbs, input)
	if err != nil {
		return nil, err
	}
	out, err := db.QueryJSON(ctx, req.Query, req.Parameters)
	if err != nil {
		return nil, stepError(ctx, err)
	}
	return out, nil
}

// Exec runs sql.exec's input on the databases granted to the step.
func Exec(ctx context.Context, dbs *sqlcap.Set, input []byte) ([]byte, error) {
	db, req, err := prepare(ExecName, dbs, input)
	if err != nil {
		return nil, err
	}
	n, err := db.ExecJSON(ctx, req.Query, req.Parameters)
	if err != nil {
		return nil, stepError(ctx, err)
	}
	return json.Marshal(ExecResult{RowsAffected: n})
}

// prepare reads the input and finds its database.
func prepare(block string, dbs *sqlcap.Set, input []byte) (*sqlcap.DB, *Request, error) {
	var req Request
	dec := json.NewDecoder(bytes.NewReader(input))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return nil, nil, abi.NewError(abi.CodeInvalidFormat, abi.ClassPermanent,
			fmt.Sprintf("%s: the input is not a JSON object of database, query and parameters: %v", block, err))
	}
	switch {
	case req.Query != "" && req.Statement != "" && req.Query != req.Statement:
		return nil, nil, invalid("%s: query and statement differ; give one", block)
	case req.Query == "":
		req.Query = req.Statement
	}
	if req.Query == "" {
		return nil, nil, abi.NewError(abi.CodeMissingRequiredField, abi.ClassPermanent, block+`: "query" is required`)
	}
	name := req.Database
	if cs := req.ConnectionString; cs != "" {
		if err := sqlcap.ValidName(cs); err != nil {
			// A DSN or a URL: never connected to, and never echoed (it may
			// hold a password).
			return nil, nil, abi.NewError(abi.CodePermissionDenied, abi.ClassPermanent, block+
				": connection_string is accepted only as the name of a granted database, and this one is not a name; "+
				"the operator grants databases (--allow-sql NAME=DRIVER:DSN, or the manifest's sql section) and the input names one")
		}
		if name != "" && name != cs {
			return nil, nil, invalid("%s: database %q and connection_string %q differ; give one", block, name, cs)
		}
		name = cs
	}
	if name == "" {
		names := dbs.Names()
		if len(names) != 1 {
			return nil, nil, abi.NewError(abi.CodeMissingRequiredField, abi.ClassPermanent, fmt.Sprintf(
				`%s: "database" is required when the step has %d databases granted (%s)`, block, len(names), strings.Join(names, ", ")))
		}
		name = names[0]
	}
	op := "query"
	if block == ExecName {
		op = "exec"
	}
	db, err := dbs.Get(op, name)
	if err != nil {
		return nil, nil, sqlcap.StepError(err)
	}
	return db, &req, nil
}

// stepError returns a statement's failure as the step's error; a step
// that ended returns the context's error, so that the host reports the
// step's own status.
func stepError(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return context.Cause(ctx)
	}
	return sqlcap.StepError(err)
}

func invalid(format string, a ...any) *abi.Error {
	return abi.NewError(abi.CodeInvalidInput, abi.ClassPermanent, fmt.Sprintf(format, a...))
}
