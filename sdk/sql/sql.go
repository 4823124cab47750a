// Package sql is the SQL API for blocks: statements on the databases the
// operator granted to the step, by name, through the sql_* host functions
// (docs/abi.md §10). It imports only the standard library and builds for
// wasip1.
//
// Statements are parameterised: a block sends the statement text and its
// arguments apart, and the host hands the arguments to the database as
// values. There is no API that builds SQL from values, and none should be
// written: a value pasted into the text is an injection waiting to happen.
// One call runs one statement. The host decides everything else — which
// databases exist, whether they are read-only (the default), each
// statement's timeout and the caps on a result.
//
//	db := sql.Open("orders")
//	rows, err := db.Query(ctx, "SELECT id, total FROM orders WHERE customer = $1", customer)
//	var orders []struct{ ID int64; Total float64 }
//	err = rows.Scan(&orders)
//
// Every failure is an *Error: errors.Is matches it against the sdk's
// result sentinels (sdk.ErrDenied for a database not granted or a write
// under read-only, sdk.ErrInvalid for a bad statement, sdk.ErrLimit for a
// result over its caps, sdk.ErrUnavailable for a retryable failure), and
// errors.As finds an *sdk.Error with the host's code and class, so a
// handler can return it as it is.
package sql

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"reflect"
	"time"

	"github.com/blockhost/blockhost/abi"
	"github.com/blockhost/blockhost/sdk"
	"github.com/blockhost/blockhost/sdk/internal/callerr"
	"github.com/blockhost/blockhost/sdk/internal/hostcall"
)

// DB is a database granted to the step, by the name the grant gives it.
// Opening it does nothing; each statement asks the host.
type DB struct{ name string }

// Open returns the granted database name.
func Open(name string) *DB { return &DB{name: name} }

// Name returns the database's name.
func (db *DB) Name() string { return db.name }

// Rows are the rows a query returned, all of them: the host caps a result
// (max_rows, max_bytes) rather than streaming it.
type Rows struct {
	// Columns are the column names, in the query's order.
	Columns []string
	rows    []json.RawMessage
}

// Len returns the number of rows.
func (r *Rows) Len() int { return len(r.rows) }

// JSON returns each row as a JSON object whose keys are the column names.
func (r *Rows) JSON() []json.RawMessage { return r.rows }

// Maps returns each row as a map from column name to value: nil, bool,
// int64 (integers), float64, or string (text; bytes come base64-encoded).
func (r *Rows) Maps() ([]map[string]any, error) {
	out := make([]map[string]any, len(r.rows))
	for i, raw := range r.rows {
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.UseNumber()
		var m map[string]any
		if err := dec.Decode(&m); err != nil {
			return nil, fmt.Errorf("sdk/sql: row %d: %w", i, err)
		}
		for k, v := range m {
			if n, ok := v.(json.Number); ok {
				if x, err := n.Int64(); err == nil {
					m[k] = x
				} else if f, err := n.Float64(); err == nil {
					m[k] = f
				}
			}
		}
		out[i] = m
	}
	return out, nil
}

// Scan decodes the rows into dst, a pointer to a slice of structs (or of
// maps), by encoding/json's rules: a column goes to the field whose json
// tag, or name, matches it, case-insensitively. Columns with no field are
// skipped.
func (r *Rows) Scan(dst any) error {
	v := reflect.ValueOf(dst)
	if v.Kind() != reflect.Pointer || v.Elem().Kind() != reflect.Slice {
		return fmt.Errorf("sdk/sql: Scan wants a pointer to a slice, got %T", dst)
	}
	s := v.Elem()
	s.Set(reflect.MakeSlice(s.Type(), len(r.rows), len(r.rows)))
	for i, raw := range r.rows {
		if err := json.Unmarshal(raw, s.Index(i).Addr().Interface()); err != nil {
			return fmt.Errorf("sdk/sql: row %d: %w", i, err)
		}
	}
	return nil
}

// Result is what a statement that returns no rows did.
type Result struct {
	// RowsAffected is how many rows it inserted, updated or deleted.
	RowsAffected int64
}

// Query runs one statement that returns rows, with args for its
// placeholders ($1, $2, … on PostgreSQL; ? or $1 on SQLite). An argument
// is nil, a bool, an integer, a float, a string, a []byte (sent as a
// string), a time.Time (sent in RFC 3339), or a pointer to one of these.
// ctx already done fails at once; the host bounds the statement by the
// step's deadline.
func (db *DB) Query(ctx context.Context, stmt string, args ...any) (*Rows, error) {
	req, err := db.request(ctx, "query", stmt, args)
	if err != nil {
		return nil, err
	}
	n, r := hostcall.SQLQuery(req)
	if r != abi.ResultOK {
		return nil, db.failure("query", abi.FuncSQLQuery, r)
	}
	buf := make([]byte, n)
	m, r := hostcall.SQLResult(buf)
	if r != abi.ResultOK || m != n {
		return nil, db.failure("query", abi.FuncSQLResult, r)
	}
	var res abi.SQLResult
	if err := json.Unmarshal(buf, &res); err != nil {
		return nil, &Error{Op: "query", Database: db.name, Result: abi.ResultIO, Code: abi.CodeInternalError,
			Message: "the host's result is not valid JSON: " + err.Error()}
	}
	return &Rows{Columns: res.Columns, rows: res.Rows}, nil
}

// Exec runs one statement that returns no rows, such as an INSERT, and
// returns how many rows it changed. Under a read-only grant the database
// refuses any change: the error matches sdk.ErrDenied.
func (db *DB) Exec(ctx context.Context, stmt string, args ...any) (Result, error) {
	req, err := db.request(ctx, "exec", stmt, args)
	if err != nil {
		return Result{}, err
	}
	n, r := hostcall.SQLExec(req)
	if r != abi.ResultOK {
		return Result{}, db.failure("exec", abi.FuncSQLExec, r)
	}
	return Result{RowsAffected: n}, nil
}

func (db *DB) request(ctx context.Context, op, stmt string, args []any) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("sdk/sql: %s %s: %w", op, db.name, context.Cause(ctx))
	}
	params := make([]any, len(args))
	for i, a := range args {
		v, err := param(a)
		if err != nil {
			return nil, &Error{Op: op, Database: db.name, Result: abi.ResultInvalid, Code: abi.CodeInvalidInput,
				Message: fmt.Sprintf("argument %d: %v", i+1, err)}
		}
		params[i] = v
	}
	p, err := json.Marshal(params)
	if err != nil {
		return nil, &Error{Op: op, Database: db.name, Result: abi.ResultInvalid, Code: abi.CodeInvalidInput, Message: err.Error()}
	}
	return json.Marshal(abi.SQLRequest{Database: db.name, Statement: stmt, Params: p})
}

// param turns an argument into the JSON value the host takes.
func param(a any) (any, error) {
	switch x := a.(type) {
	case nil, bool, string, int, int8, int16, int32, int64, uint, uint8, uint16, uint32:
		return x, nil
	case uint64:
		if x > math.MaxInt64 {
			return nil, errors.New("uint64 over the largest int64")
		}
		return x, nil
	case float32, float64:
		f := reflect.ValueOf(x).Float()
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return nil, errors.New("NaN and infinities have no JSON form")
		}
		return x, nil
	case []byte:
		return string(x), nil
	case time.Time:
		return x.Format(time.RFC3339Nano), nil
	case json.Number:
		return x, nil
	}
	v := reflect.ValueOf(a)
	if v.Kind() == reflect.Pointer {
		if v.IsNil() {
			return nil, nil
		}
		return param(v.Elem().Interface())
	}
	return nil, fmt.Errorf("a %T is not a SQL parameter (null, bool, number, string, bytes, time)", a)
}

// Error is a statement the host refused or the database failed.
type Error struct {
	// Op is "query" or "exec"; Database the name given to Open.
	Op, Database string
	// Result is what the host function returned.
	Result abi.Result
	// Code, Class and Message are the host's account of the failure.
	Code    abi.Code
	Class   abi.Class
	Message string
}

// Error returns the host's message, which names the database.
func (e *Error) Error() string { return "sdk/sql: " + e.Message }

// Is matches the result's sentinel (sdk.ErrDenied, sdk.ErrInvalid, …).
func (e *Error) Is(target error) bool {
	return e.Result != abi.ResultOK && errors.Is(&sdk.CallError{Result: e.Result}, target)
}

// Unwrap returns the failure as an *sdk.Error with the host's code and
// class, so that a handler may return it as the step's error.
func (e *Error) Unwrap() error { return sdk.NewError(e.Code, e.Class, e.Error()) }

func (db *DB) failure(op, fn string, r abi.Result) *Error {
	e := &Error{Op: op, Database: db.name, Result: r}
	e.Code, e.Class, e.Message = callerr.Detail(r, hostcall.SQLLastError, abi.CodeResourceUnavailable, abi.CodeExecutionFailed,
		op+" "+db.name+": "+fn+": "+r.String())
	return e
}
