package sqlcap

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"net/url"
	"strconv"
	"strings"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// sqliteDriver opens every SQLite connection sqlcap uses. It is a driver
// of its own, not the "sqlite" one the package registers, so that its
// connection hook (the authorizer) applies to sqlcap's connections and to
// nobody else's.
var sqliteDriver = func() *sqlite.Driver {
	d := &sqlite.Driver{}
	d.RegisterConnectionHook(func(c sqlite.ExecQuerierContext, _ string) error {
		r, ok := c.(sqlite.AuthorizerRegisterer)
		if !ok {
			return errors.New("sqlcap: the SQLite driver offers no authorizer")
		}
		return r.RegisterAuthorizer(authorize)
	})
	return d
}()

// readPragmas are the pragmas a block may run: they describe the schema
// and change nothing. database_list is not one of them: it shows the
// database file's path.
var readPragmas = map[string]bool{
	"table_info": true, "table_xinfo": true, "table_list": true,
	"index_list": true, "index_info": true, "index_xinfo": true,
	"foreign_key_list": true,
}

// authorize is SQLite's authorizer on every sqlcap connection. The
// database file's read-only open and query_only already refuse writes;
// this refuses what they do not cover: ATTACH and DETACH (which would open
// other files on the host, or create them); every pragma but the ones
// that only describe the schema (query_only=0 would lift query_only,
// others change the connection for the next step that gets it); and what
// would outlive the statement on its pooled connection — a transaction
// left open (BEGIN, SAVEPOINT), and temporary tables, views, indexes and
// triggers (a temporary trigger would run inside other steps' writes).
func authorize(action sqlite.AuthorizerActionCode, arg1, _, _, _ string) sqlite.AuthorizerReturnCode {
	switch action {
	case sqlite.AuthAttach, sqlite.AuthDetach, sqlite.AuthTransaction, sqlite.AuthSavepoint,
		sqlite.AuthCreateTempTable, sqlite.AuthCreateTempView, sqlite.AuthCreateTempIndex, sqlite.AuthCreateTempTrigger,
		sqlite.AuthDropTempTable, sqlite.AuthDropTempView, sqlite.AuthDropTempIndex, sqlite.AuthDropTempTrigger:
		return sqlite.AuthorizerDeny
	case sqlite.AuthPragma:
		if readPragmas[strings.ToLower(arg1)] {
			return sqlite.AuthorizerOK
		}
		return sqlite.AuthorizerDeny
	}
	return sqlite.AuthorizerOK
}

// sqliteConnector opens connections through sqliteDriver.
type sqliteConnector struct{ dsn string }

func (c sqliteConnector) Connect(context.Context) (driver.Conn, error) {
	return sqliteDriver.Open(c.dsn)
}

func (c sqliteConnector) Driver() driver.Driver { return sqliteDriver }

// sqliteDSN builds the modernc DSN for a grant: a file: URI, so that
// SQLite itself reads mode=ro, with the connection settings sqlcap relies
// on.
func sqliteDSN(g Grant, path string) string {
	q := url.Values{}
	u := url.URL{Scheme: "file", OmitHost: true}
	if path == memoryDSN {
		u.Opaque = memoryDSN
		q.Set("mode", "memory")
	} else {
		u.Path = path
		q.Set("mode", "rwc")
		if g.ReadOnly() {
			q.Set("mode", "ro")
		}
	}
	pragmas := []string{
		// A lock held elsewhere is waited for half the statement's
		// timeout, then reported as busy (retryable) rather than as the
		// statement's timeout.
		"busy_timeout(" + strconv.FormatInt(g.Timeout.Milliseconds()/2, 10) + ")",
		// A database file's schema is not trusted to call functions
		// with side effects from views and triggers.
		"trusted_schema(0)",
		"foreign_keys(1)",
	}
	if g.ReadOnly() {
		pragmas = append(pragmas, "query_only(1)")
	}
	q["_pragma"] = pragmas
	u.RawQuery = q.Encode()
	return u.String()
}

func openSQLite(g Grant, path string) *sql.DB {
	return sql.OpenDB(sqliteConnector{dsn: sqliteDSN(g, path)})
}

// prepareSQLite readies a connection taken from the pool for one
// statement: no attached databases, whatever a statement asks. The
// authorizer refuses ATTACH already; the limit also stops the ATTACH that
// VACUUM INTO makes inside SQLite.
func prepareSQLite(c *sql.Conn) error {
	_, err := sqlite.Limit(c, sqlite3.SQLITE_LIMIT_ATTACHED, 0)
	return err
}

// classifySQLite sorts a SQLite error into a kind.
func classifySQLite(err error) (kind error, state string, ok bool) {
	var se *sqlite.Error
	if !errors.As(err, &se) {
		return nil, "", false
	}
	code := se.Code()
	state = sqliteCodeName(code)
	switch code & 0xff {
	case sqlite3.SQLITE_ERROR, sqlite3.SQLITE_RANGE, sqlite3.SQLITE_MISMATCH:
		return ErrInvalid, state, true
	case sqlite3.SQLITE_CONSTRAINT:
		return ErrConstraint, state, true
	case sqlite3.SQLITE_READONLY, sqlite3.SQLITE_AUTH, sqlite3.SQLITE_PERM:
		return ErrDenied, state, true
	case sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED, sqlite3.SQLITE_NOMEM, sqlite3.SQLITE_IOERR, sqlite3.SQLITE_PROTOCOL:
		return ErrUnavailable, state, true
	case sqlite3.SQLITE_TOOBIG:
		return ErrQuota, state, true
	}
	return ErrFailed, state, true
}

// sqliteCodeName names a SQLite result code the way SQLite's documentation
// does, extended codes included where they matter to a block.
func sqliteCodeName(code int) string {
	switch code {
	case sqlite3.SQLITE_CONSTRAINT_UNIQUE:
		return "SQLITE_CONSTRAINT_UNIQUE"
	case sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY:
		return "SQLITE_CONSTRAINT_PRIMARYKEY"
	case sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY:
		return "SQLITE_CONSTRAINT_FOREIGNKEY"
	case sqlite3.SQLITE_CONSTRAINT_NOTNULL:
		return "SQLITE_CONSTRAINT_NOTNULL"
	case sqlite3.SQLITE_CONSTRAINT_CHECK:
		return "SQLITE_CONSTRAINT_CHECK"
	}
	switch code & 0xff {
	case sqlite3.SQLITE_ERROR:
		return "SQLITE_ERROR"
	case sqlite3.SQLITE_CONSTRAINT:
		return "SQLITE_CONSTRAINT"
	case sqlite3.SQLITE_READONLY:
		return "SQLITE_READONLY"
	case sqlite3.SQLITE_AUTH:
		return "SQLITE_AUTH"
	case sqlite3.SQLITE_BUSY:
		return "SQLITE_BUSY"
	case sqlite3.SQLITE_LOCKED:
		return "SQLITE_LOCKED"
	case sqlite3.SQLITE_INTERRUPT:
		return "SQLITE_INTERRUPT"
	case sqlite3.SQLITE_CANTOPEN:
		return "SQLITE_CANTOPEN"
	case sqlite3.SQLITE_RANGE:
		return "SQLITE_RANGE"
	case sqlite3.SQLITE_TOOBIG:
		return "SQLITE_TOOBIG"
	}
	return "SQLITE_" + strconv.Itoa(code)
}
