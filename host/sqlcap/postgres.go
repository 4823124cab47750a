package sqlcap

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgconn/ctxwatch"
	"github.com/jackc/pgx/v5/stdlib"
)

func parsePostgres(dsn string) (*pgx.ConnConfig, error) {
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		// pgx's message quotes the connection string; ours does not.
		return nil, errors.New("not a PostgreSQL URL or key=value connection string")
	}
	return cfg, nil
}

// cancelDelay is how long a connection whose statement's context ended
// waits for the server to act on the cancel request before it gives up on
// the connection.
const cancelDelay = 2 * time.Second

// openPostgres opens a grant's pool through pgx's database/sql adapter.
func openPostgres(g Grant, dsn string) (*sql.DB, error) {
	cfg, err := parsePostgres(dsn)
	if err != nil {
		return nil, &GrantError{Grant: g.Name, Reason: "dsn: " + err.Error()}
	}
	// Every statement goes through the extended protocol as one unnamed
	// statement with untyped text parameters: the server refuses text
	// with more than one statement in it, infers the parameters' types
	// from the statement (a JSON "42" compares with an integer column),
	// and holds no prepared statements between steps. A DSN's
	// default_query_exec_mode=simple_protocol, which would allow several
	// statements, is overridden here.
	cfg.DefaultQueryExecMode = pgx.QueryExecModeExec
	cfg.StatementCacheCapacity = 0
	cfg.DescriptionCacheCapacity = 0
	if cfg.ConnectTimeout == 0 || cfg.ConnectTimeout > g.Timeout {
		cfg.ConnectTimeout = g.Timeout
	}
	// When a statement's context ends, ask the server to cancel it (a
	// cancel request on a separate connection) rather than only dropping
	// our end of the socket, which would leave the statement running on
	// the server; the socket deadline follows if the server does not
	// answer.
	cfg.BuildContextWatcherHandler = func(c *pgconn.PgConn) ctxwatch.Handler {
		return &pgconn.CancelRequestContextWatcherHandler{Conn: c, DeadlineDelay: cancelDelay}
	}
	return stdlib.OpenDB(*cfg), nil
}

// classifyPostgres sorts a PostgreSQL or pgx error into a kind by its
// SQLSTATE, or by the connection failure behind it.
func classifyPostgres(err error) (kind error, state string, ok bool) {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pgStateKind(pe.Code), pe.Code, true
	}
	var ce *pgconn.ConnectError
	var ne net.Error
	var oe *net.OpError
	switch {
	case errors.As(err, &ce), errors.As(err, &oe), errors.As(err, &ne):
		return ErrNetwork, "", true
	case pgconn.SafeToRetry(err):
		return ErrNetwork, "", true
	}
	msg := err.Error()
	if strings.Contains(msg, "conn closed") || strings.Contains(msg, "unexpected EOF") {
		// pgx reports a connection the server closed this way.
		return ErrNetwork, "", true
	}
	return nil, "", false
}

// pgStateKind maps a SQLSTATE to a kind. docs/capabilities.md has the same
// table.
func pgStateKind(code string) error {
	switch code {
	case "42501": // insufficient_privilege
		return ErrDenied
	case "25006": // read_only_sql_transaction
		return ErrDenied
	case "40001", "40P01": // serialization_failure, deadlock_detected
		return ErrUnavailable
	case "55P03": // lock_not_available
		return ErrUnavailable
	case "57P01", "57P02": // admin_shutdown, crash_shutdown
		return ErrNetwork
	case "57P03": // cannot_connect_now
		return ErrUnavailable
	case "57014": // query_canceled, by someone else than this statement's context
		return ErrTimeout
	}
	if len(code) < 2 {
		return ErrFailed
	}
	switch code[:2] {
	case "42", "22", "0A", "26", "34", "3F", "2F": // syntax and access, data, not supported, names
		return ErrInvalid
	case "23": // integrity constraint violation
		return ErrConstraint
	case "28": // invalid authorization
		return ErrDenied
	case "08": // connection exception
		return ErrNetwork
	case "53": // insufficient resources: too many connections, out of memory, disk full
		return ErrUnavailable
	case "54": // program limit exceeded
		return ErrQuota
	}
	return ErrFailed
}

// beginReadOnly starts the read-only transaction a statement runs in under
// a read-only grant. It is issued on the connection rather than through
// database/sql's Tx, so that an exec can reach pgx (execPostgres) inside
// it.
func beginReadOnly(ctx context.Context, c *sql.Conn) error {
	_, err := c.ExecContext(ctx, "BEGIN READ ONLY")
	return err
}

// endReadOnly rolls the read-only transaction back, never commits it:
// whatever the statement set for the session (SET, set_config, temporary
// tables) goes with it, so the next step to get the connection starts
// clean; the few things a rollback keeps — session advisory locks and
// prepared statements — are released in the same round trip. A connection
// that cannot be cleaned is closed rather than returned to the pool.
func endReadOnly(c *sql.Conn) {
	ctx, cancel := context.WithTimeout(context.Background(), cancelDelay)
	defer cancel()
	// Our own text, without parameters: pgx sends it by the simple
	// protocol, which runs the three statements in one round trip.
	if _, err := c.ExecContext(ctx, "ROLLBACK; SELECT pg_advisory_unlock_all(); DEALLOCATE ALL"); err != nil {
		c.Raw(func(any) error { return driver.ErrBadConn })
	}
}

// execPostgres runs a statement that returns no rows through pgx itself.
// pgx sends a statement without parameters by the simple protocol, which
// runs every statement in the text; this sends it by the extended
// protocol, as one statement, the way it sends one with parameters.
func execPostgres(ctx context.Context, c *sql.Conn, stmt string, params []any) (n int64, err error) {
	err = c.Raw(func(dc any) error {
		sc, ok := dc.(*stdlib.Conn)
		if !ok {
			return fmt.Errorf("sqlcap: unexpected PostgreSQL connection %T", dc)
		}
		var tag pgconn.CommandTag
		var err error
		if len(params) == 0 {
			tag, err = sc.Conn().PgConn().ExecParams(ctx, stmt, nil, nil, nil, nil).Close()
		} else {
			tag, err = sc.Conn().Exec(ctx, stmt, params...)
		}
		n = tag.RowsAffected()
		return err
	})
	return n, err
}

// endReadWrite leaves a connection as a statement under a read-write
// grant found it, for the next step that gets it: a transaction the
// statement opened (BEGIN) is rolled back and the call fails, and the
// session is reset (DISCARD ALL: settings, temporary tables, prepared
// statements, advisory locks). A connection that cannot be reset is closed
// rather than returned to the pool.
func endReadWrite(c *sql.Conn) (leftOpen bool) {
	ctx, cancel := context.WithTimeout(context.Background(), cancelDelay)
	defer cancel()
	err := c.Raw(func(dc any) error {
		sc, ok := dc.(*stdlib.Conn)
		if !ok {
			return driver.ErrBadConn
		}
		pc := sc.Conn().PgConn()
		if pc.TxStatus() != 'I' {
			leftOpen = true
			if _, err := pc.Exec(ctx, "ROLLBACK").ReadAll(); err != nil {
				return driver.ErrBadConn
			}
		}
		if _, err := pc.Exec(ctx, "DISCARD ALL").ReadAll(); err != nil {
			return driver.ErrBadConn
		}
		return nil
	})
	_ = err
	return leftOpen
}
