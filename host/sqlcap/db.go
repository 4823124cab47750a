package sqlcap

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/blockhost/blockhost/host/capability"
)

// DB is one granted database: its grant and its pool of connections,
// shared by every step the grant is given to. A DB is safe for concurrent
// use; each statement takes a connection of its own from the pool for as
// long as it runs, so no connection is ever used by two steps at once.
type DB struct {
	g      Grant
	db     *sql.DB
	log    hclog.Logger
	closed atomic.Bool

	// errStatementTimeout is the cause of a statement's own context
	// when the grant's timeout passes, told apart from the step's end.
	errStatementTimeout error
	// dep is the database's name as a dependency, Dependency(g.Name).
	dep string
}

// Dependency returns the name of the database granted as name as a
// dependency of the executor's circuit breaker and retry budget:
// "sql:NAME". Every statement that reaches the database reports to it
// (capability.ReportDependency), from a WebAssembly block's sql_* calls
// and from the built-in blocks alike; the name is the grant's, never
// anything of its DSN.
func Dependency(name string) string { return "sql:" + name }

// Open validates g and opens its pool. It reads DSNEnv but does not
// connect: the first statement does. A nil logger logs nothing.
func Open(g Grant, log hclog.Logger) (*DB, error) {
	if err := g.Validate(); err != nil {
		return nil, err
	}
	g = g.WithDefaults()
	dsn, err := g.dsn()
	if err != nil {
		return nil, err
	}
	var db *sql.DB
	switch g.Driver {
	case DriverPostgres:
		if db, err = openPostgres(g, dsn); err != nil {
			return nil, err
		}
	default:
		db = openSQLite(g, dsn)
	}
	db.SetMaxOpenConns(g.MaxConns)
	db.SetMaxIdleConns(g.MaxConns)
	if dsn != memoryDSN {
		db.SetConnMaxIdleTime(5 * time.Minute)
	}
	if log == nil {
		log = hclog.NewNullLogger()
	}
	return &DB{
		g:                   g,
		db:                  db,
		log:                 log.Named("sql").With("database", g.Name),
		errStatementTimeout: fmt.Errorf("sqlcap: database %q: statement timeout %s", g.Name, g.Timeout),
		dep:                 Dependency(g.Name),
	}, nil
}

// Grant returns the grant the database was opened with, defaults filled in.
func (d *DB) Grant() Grant { return d.g }

// Close closes the pool. Statements running finish first.
func (d *DB) Close() error {
	if d.closed.Swap(true) {
		return nil
	}
	return d.db.Close()
}

// Stats returns the pool's statistics.
func (d *DB) Stats() sql.DBStats { return d.db.Stats() }

// ExecResult is what a statement that returns no rows did.
type ExecResult struct {
	// RowsAffected is how many rows it inserted, updated or deleted.
	RowsAffected int64 `json:"rows_affected"`
}

// Query runs one statement with its parameters and returns its rows,
// within the grant's caps. Parameters are nil, bool, int64, float64, string
// or []byte (DecodeParams gives them from JSON); they are sent to the
// database apart from the statement text and are never part of it.
func (d *DB) Query(ctx context.Context, stmt string, params []any) (*Result, error) {
	var res *Result
	err := d.run(ctx, "query", stmt, params, func(ctx context.Context, c *sql.Conn, stop context.CancelFunc) error {
		rows, err := c.QueryContext(ctx, stmt, params...)
		if err != nil {
			return err
		}
		defer rows.Close()
		res, err = readRows(rows, d.g.MaxRows, d.g.MaxBytes)
		if err != nil {
			// Stop the statement on the server before closing the
			// rows, so that closing does not read the rest.
			stop()
		}
		return err
	})
	return res, err
}

// Exec runs one statement that returns no rows, such as an INSERT, and
// says how many rows it changed. Under a read-only grant the database
// refuses any change (ErrDenied).
func (d *DB) Exec(ctx context.Context, stmt string, params []any) (ExecResult, error) {
	var res ExecResult
	err := d.run(ctx, "exec", stmt, params, func(ctx context.Context, c *sql.Conn, _ context.CancelFunc) error {
		var err error
		if d.g.Driver == DriverPostgres {
			res.RowsAffected, err = execPostgres(ctx, c, stmt, params)
			return err
		}
		r, err := c.ExecContext(ctx, stmt, params...)
		if err != nil {
			return err
		}
		res.RowsAffected, err = r.RowsAffected()
		return err
	})
	return res, err
}

// run checks a statement, takes a connection for it under the grant's
// timeout and the step's context, and runs fn on it, in a read-only
// transaction for PostgreSQL under a read-only grant.
func (d *DB) run(ctx context.Context, op, stmt string, params []any, fn func(context.Context, *sql.Conn, context.CancelFunc) error) (err error) {
	start := time.Now()
	defer func() { d.logDone(op, stmt, len(params), start, err) }()
	if err := d.check(op, stmt, params); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return d.errorFor(ctx, ctx, op, err)
	}
	// From here on the statement goes to the database: how it ends says
	// whether the database is unhealthy (a retryable failure) or answered,
	// except a statement cut by the step's end or our own closing.
	defer func() {
		if !errors.Is(err, ErrStepEnded) && !errors.Is(err, ErrClosed) {
			capability.ReportDependency(ctx, d.dep, err != nil && Retryable(err))
		}
	}()
	sctx, cancel := context.WithTimeoutCause(ctx, d.g.Timeout, d.errStatementTimeout)
	defer cancel()
	conn, err := d.db.Conn(sctx)
	if err != nil {
		return d.errorFor(ctx, sctx, op, err)
	}
	defer conn.Close()
	switch d.g.Driver {
	case DriverSQLite:
		if err := prepareSQLite(conn); err != nil {
			return d.errorFor(ctx, sctx, op, err)
		}
	case DriverPostgres:
		if d.g.ReadOnly() {
			if err := beginReadOnly(sctx, conn); err != nil {
				return d.errorFor(ctx, sctx, op, err)
			}
			defer endReadOnly(conn)
		}
	}
	err = fn(sctx, conn, cancel)
	if d.g.Driver == DriverPostgres && !d.g.ReadOnly() && endReadWrite(conn) && err == nil {
		return &Error{Kind: ErrInvalid, Op: op, Database: d.g.Name,
			Reason: "the statement left a transaction open; each call is its own transaction, and it was rolled back"}
	}
	if err != nil {
		return d.errorFor(ctx, sctx, op, err)
	}
	return nil
}

// check refuses, before anything reaches the database, a statement over
// the caps, a parameter of a kind no driver takes, and for SQLite a text
// with more than one statement.
func (d *DB) check(op, stmt string, params []any) error {
	fail := func(kind error, format string, a ...any) error {
		return &Error{Kind: kind, Op: op, Database: d.g.Name, Reason: fmt.Sprintf(format, a...)}
	}
	if d.closed.Load() {
		return fail(ErrClosed, "the database's pool is closed")
	}
	switch {
	case len(stmt) > MaxStatementBytes:
		return fail(ErrQuota, "statement is %d bytes, over the %d-byte cap", len(stmt), MaxStatementBytes)
	case len(params) > MaxParameters:
		return fail(ErrQuota, "%d parameters, over the cap of %d", len(params), MaxParameters)
	case blank(stmt):
		return fail(ErrInvalid, "empty statement")
	case d.g.Driver == DriverSQLite && !singleStatement(stmt):
		return fail(ErrInvalid, "more than one statement; send one per call")
	}
	for i, p := range params {
		switch p.(type) {
		case nil, bool, int64, float64, string, []byte:
		default:
			return fail(ErrInvalid, "parameter %d is a %T; parameters are null, booleans, numbers, strings or bytes", i+1, p)
		}
	}
	return nil
}

// errorFor turns what a statement returned into an *Error: the step's end
// first, then the grant's timeout, then the database's own error.
func (d *DB) errorFor(step, sctx context.Context, op string, err error) error {
	var e *Error
	if errors.As(err, &e) {
		if e.Op == "" {
			e.Op, e.Database = op, d.g.Name
		}
		return err
	}
	e = &Error{Op: op, Database: d.g.Name, Err: err}
	switch {
	case step.Err() != nil:
		e.Kind, e.Err = ErrStepEnded, context.Cause(step)
		e.Reason = "the step ended while the statement ran; it was stopped"
		return e
	case errors.Is(context.Cause(sctx), d.errStatementTimeout):
		e.Kind = ErrTimeout
		e.Reason = fmt.Sprintf("over the grant's timeout of %s; the statement was stopped", d.g.Timeout)
		return e
	case errors.Is(err, sql.ErrConnDone) || d.closed.Load():
		e.Kind, e.Reason = ErrClosed, "the database's pool is closed"
		return e
	}
	var kind error
	var ok bool
	if d.g.Driver == DriverPostgres {
		kind, e.SQLState, ok = classifyPostgres(err)
	} else {
		kind, e.SQLState, ok = classifySQLite(err)
	}
	if !ok {
		kind = ErrFailed
	}
	e.Kind = kind
	e.Reason = reason(err)
	return e
}

// logDone logs a statement at debug, and a refusal at warn, with its size
// and never its parameters (they may be personal data).
func (d *DB) logDone(op, stmt string, nparams int, start time.Time, err error) {
	ms := float64(time.Since(start).Microseconds()) / 1000
	if err != nil {
		if errors.Is(err, ErrDenied) || errors.Is(err, ErrQuota) {
			d.log.Warn("statement refused", "op", op, "statement_bytes", len(stmt), "params", nparams, "ms", ms, "error", err)
			return
		}
		d.log.Debug("statement failed", "op", op, "statement_bytes", len(stmt), "params", nparams, "ms", ms, "error", err)
		return
	}
	if d.log.IsDebug() {
		d.log.Debug("statement", "op", op, "statement_bytes", len(stmt), "params", nparams, "ms", ms)
	}
}
