package abi

import "encoding/json"

// Host functions of the SQL capability (docs/abi.md §10). Each returns an
// i32 Result. A block names a database granted to the step; it never
// gives a connection string.
const (
	// FuncSQLQuery(req_ptr, req_len, n_ptr) -> result runs one statement
	// that returns rows: req is an SQLRequest as JSON. On ok it writes the
	// length (u32) of the result, an SQLResult as JSON, which the host
	// holds for sql_result until the next sql_query.
	FuncSQLQuery = "sql_query"
	// FuncSQLResult(buf_ptr, buf_len, n_ptr) -> result copies the result
	// of the last sql_query into buf, writes its length at n_ptr and
	// releases it. When buf_len is too small it writes only the length,
	// with ResultLimit, and keeps the result; with no result held it
	// returns ResultNotFound.
	FuncSQLResult = "sql_result"
	// FuncSQLExec(req_ptr, req_len, affected_ptr) -> result runs one
	// statement that returns no rows and writes the number of rows it
	// changed (i64) at affected_ptr.
	FuncSQLExec = "sql_exec"
	// FuncSQLLastError(buf_ptr, buf_len, n_ptr) -> result writes the
	// detail of the step's last failed SQL call, an Error as JSON.
	FuncSQLLastError = "sql_last_error"
)

// MaxSQLRequest is the largest request, in bytes, sql_query and sql_exec
// accept; a longer one is refused with ResultLimit.
const MaxSQLRequest = 4 << 20

// SQLRequest is one statement a block sends with sql_query or sql_exec.
type SQLRequest struct {
	// Database is the name of a database granted to the step.
	Database string `json:"database"`
	// Statement is one SQL statement, with placeholders for the
	// parameters: $1, $2, … on PostgreSQL; ?, ?NNN or $NNN on SQLite.
	Statement string `json:"statement"`
	// Params are the statement's parameters, a JSON array of null,
	// booleans, numbers and strings. They reach the database as values,
	// apart from the statement text.
	Params json.RawMessage `json:"params,omitempty"`
}

// SQLResult is what sql_query returns: the rows, each an object whose
// keys are the column names in the order of Columns.
type SQLResult struct {
	Columns  []string          `json:"columns"`
	Rows     []json.RawMessage `json:"rows"`
	RowCount int               `json:"row_count"`
}
