//go:build !wasip1

package sdktest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/blockhost/blockhost/abi"
	"github.com/blockhost/blockhost/sdk/internal/hostcall"
)

// SQLDatabase is a database a test grants a step, for the sdk/sql
// package. host/sqlcap/sqlcaptest makes one backed by SQLite through the
// host's own SQL capability (an in-memory database, or a read-only file),
// so that a handler's statements meet the same checks, caps and errors as
// under the host; sdktest itself imports only the standard library.
type SQLDatabase interface {
	// QueryJSON runs one statement that returns rows, with parameters as
	// a JSON array, and returns an abi.SQLResult as JSON.
	QueryJSON(ctx context.Context, stmt string, params json.RawMessage) ([]byte, error)
	// ExecJSON runs one statement that returns no rows and returns the
	// rows it changed.
	ExecJSON(ctx context.Context, stmt string, params json.RawMessage) (int64, error)
}

// hostError is how an SQLDatabase's error says what the block gets: the
// host call's result and its detail. An error without it is an io failure.
type hostError interface {
	error
	HostError() (abi.Result, *abi.Error)
}

var _ hostcall.SQLHost = (*fakeHost)(nil)

// fakeSQL is the fake host's SQL state.
type fakeSQL struct {
	dbs     map[string]SQLDatabase
	pending []byte // the last query's result, until sql_result takes it
	held    bool
	lastErr *abi.Error
}

func (h *fakeHost) sqlFail(r abi.Result, code abi.Code, format string, args ...any) abi.Result {
	h.sql.lastErr = abi.NewError(code, abi.ClassPermanent, fmt.Sprintf(format, args...))
	return r
}

// sqlCall decodes a request and runs it on the named database, outside mu
// (a statement may take long; the handler's other goroutines may call the
// host meanwhile).
func (h *fakeHost) sqlCall(fn string, req []byte, run func(context.Context, SQLDatabase, abi.SQLRequest) error) abi.Result {
	h.mu.Lock()
	if h.begin() {
		h.mu.Unlock()
		return abi.ResultTimeout
	}
	deadline := h.deadline
	h.mu.Unlock()
	if len(req) > abi.MaxSQLRequest {
		h.mu.Lock()
		defer h.mu.Unlock()
		return h.sqlFail(abi.ResultLimit, abi.CodeQuotaExceeded, "%s: request of %d bytes, over %d", fn, len(req), abi.MaxSQLRequest)
	}
	var q abi.SQLRequest
	if err := json.Unmarshal(req, &q); err != nil {
		h.mu.Lock()
		defer h.mu.Unlock()
		return h.sqlFail(abi.ResultInvalid, abi.CodeInvalidInput, "%s: the request is not an SQLRequest: %v", fn, err)
	}
	db, ok := h.sql.dbs[q.Database]
	if !ok {
		h.mu.Lock()
		defer h.mu.Unlock()
		return h.sqlFail(abi.ResultDenied, abi.CodePermissionDenied, "%s: no database %q is granted to the step", fn, q.Database)
	}
	ctx := context.Background()
	if !deadline.IsZero() {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, deadline)
		defer cancel()
	}
	err := run(ctx, db, q)
	h.mu.Lock()
	defer h.mu.Unlock()
	if err == nil {
		return abi.ResultOK
	}
	if he, ok := errors.AsType[hostError](err); ok {
		r, e := he.HostError()
		h.sql.lastErr = e
		return r
	}
	return h.sqlFail(abi.ResultIO, abi.CodeExecutionFailed, "%s %s: %v", fn, q.Database, err)
}

// SQLQuery runs a statement and holds its result for SQLResult.
func (h *fakeHost) SQLQuery(req []byte) (uint32, abi.Result) {
	var out []byte
	r := h.sqlCall("query", req, func(ctx context.Context, db SQLDatabase, q abi.SQLRequest) error {
		var err error
		out, err = db.QueryJSON(ctx, q.Statement, q.Params)
		return err
	})
	h.mu.Lock()
	defer h.mu.Unlock()
	h.sql.pending, h.sql.held = nil, false
	if r != abi.ResultOK {
		return 0, r
	}
	h.sql.pending, h.sql.held = out, true
	return uint32(len(out)), r
}

// SQLResult copies the held result and releases it.
func (h *fakeHost) SQLResult(buf []byte) (uint32, abi.Result) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.begin() {
		return 0, abi.ResultTimeout
	}
	if !h.sql.held {
		return 0, abi.ResultNotFound
	}
	n := uint32(len(h.sql.pending))
	if len(buf) < len(h.sql.pending) {
		return n, abi.ResultLimit
	}
	copy(buf, h.sql.pending)
	h.sql.pending, h.sql.held = nil, false
	return n, abi.ResultOK
}

// SQLExec runs a statement that returns no rows.
func (h *fakeHost) SQLExec(req []byte) (int64, abi.Result) {
	var n int64
	r := h.sqlCall("exec", req, func(ctx context.Context, db SQLDatabase, q abi.SQLRequest) error {
		var err error
		n, err = db.ExecJSON(ctx, q.Statement, q.Params)
		return err
	})
	return n, r
}

// SQLLastError writes the detail of the last failed SQL call.
func (h *fakeHost) SQLLastError(buf []byte) (uint32, abi.Result) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.calls++
	if h.sql.lastErr == nil {
		return 0, abi.ResultNotFound
	}
	out, _ := json.Marshal(h.sql.lastErr)
	if len(buf) < len(out) {
		return uint32(len(out)), abi.ResultLimit
	}
	return uint32(copy(buf, out)), abi.ResultOK
}
