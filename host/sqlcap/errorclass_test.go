package sqlcap_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/blockhost/blockhost/abi"
	"github.com/blockhost/blockhost/host/sqlcap"
	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" database/sql driver, for the superuser's view
)

var filepathGlob = filepath.Glob

// suDB is a pool on the app database as the superuser, for looking at
// pg_stat_activity and setting up conflicts; TestMain closes it.
var (
	suOnce sync.Once
	suDB   *sql.DB
	suErr  error
)

func su(t testing.TB) *sql.DB {
	t.Helper()
	s := pg.Require(t)
	suOnce.Do(func() { suDB, suErr = sql.Open("pgx", s.DSN("postgres", "app")) })
	if suErr != nil {
		t.Fatal(suErr)
	}
	return suDB
}

// running counts the statements containing text that a server process is
// running now.
func running(t testing.TB, text string) int {
	t.Helper()
	var n int
	err := su(t).QueryRow(`SELECT count(*) FROM pg_stat_activity
		WHERE state = 'active' AND pid <> pg_backend_pid() AND strpos(query, $1) > 0`, text).Scan(&n)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// waitQuery waits until the server runs a statement containing text.
func waitQuery(t testing.TB, text string) {
	t.Helper()
	for deadline := time.Now().Add(hangCatcher); running(t, text) == 0; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the server never ran %q", text)
		}
	}
}

// waitNoQuery waits until no server process runs a statement containing
// text, and fails the test if one still does after a generous time (the
// statements used run for 40 seconds and more).
func waitNoQuery(t testing.TB, text string) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); running(t, text) != 0; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the server still runs %q: the statement was not stopped on the server", text)
		}
	}
}

// waitBackend waits until the server process running a statement
// containing text waits for an event of type eventType ("Lock" for a row
// lock, "Timeout" for pg_sleep).
func waitBackend(t testing.TB, text, eventType string) {
	t.Helper()
	for deadline := time.Now().Add(hangCatcher); ; time.Sleep(10 * time.Millisecond) {
		var n int
		err := su(t).QueryRow(`SELECT count(*) FROM pg_stat_activity
			WHERE pid <> pg_backend_pid() AND strpos(query, $1) > 0 AND wait_event_type = $2`, text, eventType).Scan(&n)
		if err != nil {
			t.Fatal(err)
		}
		if n > 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the server never waited on %s in %q", eventType, text)
		}
	}
}

// wantState checks the SQLSTATE the server gave.
func wantState(t *testing.T, err error, state string) {
	t.Helper()
	var se *sqlcap.Error
	if !errors.As(err, &se) || se.SQLState != state {
		t.Errorf("%v: SQLSTATE is not %s", err, state)
	}
}

func pgGrant(t testing.TB, user string, mode sqlcap.Mode) sqlcap.Grant {
	s := pg.Require(t)
	return sqlcap.Grant{Name: "app", Driver: sqlcap.DriverPostgres, DSN: sqlcap.Secret(s.DSN(user, "app")), Mode: mode}
}

// want checks err's kind and its class for a step.
func want(t *testing.T, err error, kind error, code abi.Code, retryable bool) {
	t.Helper()
	if !errors.Is(err, kind) {
		t.Fatalf("got %v, want %v", err, kind)
	}
	if c := sqlcap.Classify(err); c.Code != code || c.Retryable != retryable {
		t.Errorf("%v classified %+v, want %s retryable=%v", err, c, code, retryable)
	}
	if se := sqlcap.StepError(err); se.Code != code {
		t.Errorf("step error %v", se)
	}
}

// TestErrorClasses_postgres: each row of the error table, produced by a
// real PostgreSQL server.
func TestErrorClasses_postgres(t *testing.T) {
	ctx := ctxFor(t)
	t.Run("syntax", func(t *testing.T) {
		_, err := open(t, pgGrant(t, "postgres", sqlcap.ModeReadOnly)).Query(ctx, "SELEC 1", nil)
		want(t, err, sqlcap.ErrInvalid, abi.CodeInvalidInput, false)
	})
	t.Run("unknown table", func(t *testing.T) {
		_, err := open(t, pgGrant(t, "postgres", sqlcap.ModeReadOnly)).Query(ctx, "SELECT * FROM nope", nil)
		want(t, err, sqlcap.ErrInvalid, abi.CodeInvalidInput, false)
	})
	t.Run("constraint", func(t *testing.T) {
		db := open(t, pgGrant(t, "postgres", sqlcap.ModeReadWrite))
		_, err := db.Exec(ctx, "INSERT INTO items (id, name) VALUES (1, 'dup')", nil)
		want(t, err, sqlcap.ErrConstraint, abi.CodeExecutionFailed, false)
		_, err = db.Exec(ctx, "UPDATE items SET qty = -1 WHERE id = 1", nil)
		want(t, err, sqlcap.ErrConstraint, abi.CodeExecutionFailed, false)
	})
	t.Run("permission", func(t *testing.T) {
		db := open(t, pgGrant(t, "reader", sqlcap.ModeReadOnly))
		_, err := db.Query(ctx, "SELECT * FROM secrets", nil)
		want(t, err, sqlcap.ErrDenied, abi.CodePermissionDenied, false)
		if _, err := db.Query(ctx, "SELECT * FROM items", nil); err != nil {
			t.Errorf("the granted table: %v", err)
		}
	})
	t.Run("connection refused", func(t *testing.T) {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		l.Close()
		g := sqlcap.Grant{Name: "gone", Driver: sqlcap.DriverPostgres, DSN: sqlcap.Secret(fmt.Sprintf("postgres://u:pw@127.0.0.1:%d/x", port))}
		_, err = open(t, g).Query(ctx, "SELECT 1", nil)
		want(t, err, sqlcap.ErrNetwork, abi.CodeNetworkError, true)
	})
	t.Run("too many connections", func(t *testing.T) {
		// Role limited may hold one connection; this one holds it.
		hold, err := sql.Open("pgx", pg.Require(t).DSN("limited", "app"))
		if err != nil {
			t.Fatal(err)
		}
		defer hold.Close()
		c, err := hold.Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_, err = open(t, pgGrant(t, "limited", sqlcap.ModeReadOnly)).Query(ctx, "SELECT 1", nil)
		want(t, err, sqlcap.ErrUnavailable, abi.CodeResourceUnavailable, true)
	})
	t.Run("serialization failure", func(t *testing.T) {
		// A real one: the step's UPDATE runs in a SERIALIZABLE
		// transaction (the grant's DSN sets the session's isolation),
		// waits for the row another transaction updated, and that one
		// commits: the row changed after the step's snapshot, and the
		// server refuses the step's update (40001).
		tx, err := su(t).BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer tx.Rollback()
		if _, err := tx.Exec("UPDATE locks SET v = v + 1 WHERE id = 1"); err != nil {
			t.Fatal(err)
		}
		g := pgGrant(t, "postgres", sqlcap.ModeReadWrite)
		g.DSN += "&default_transaction_isolation=serializable&lock_timeout=20s"
		done := make(chan error, 1)
		go func() {
			_, err := open(t, g).Exec(ctx, "UPDATE locks SET v = v + 10 WHERE id = 1 AND 'serialization' <> ''", nil)
			done <- err
		}()
		waitBackend(t, "'serialization' <> ''", "Lock")
		if err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
		err = <-done
		want(t, err, sqlcap.ErrUnavailable, abi.CodeResourceUnavailable, true)
		wantState(t, err, "40001")
	})
	t.Run("deadlock", func(t *testing.T) {
		// A real deadlock, with the step as the victim: the superuser
		// locks row 1; the step's UPDATE locks row 2 (a sequential scan
		// meets it first), then sleeps before row 1; meanwhile the
		// superuser asks for row 2 and waits; the step then waits for
		// row 1. The step waits last, and its deadlock check (after
		// its 200 ms deadlock_timeout) finds the cycle; the superuser's
		// would only run after 30 s.
		tx, err := su(t).BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer tx.Rollback()
		for _, q := range []string{"SET LOCAL deadlock_timeout = '30s'", "UPDATE locks SET v = v + 1 WHERE id = 1"} {
			if _, err := tx.Exec(q); err != nil {
				t.Fatal(err)
			}
		}
		g := pgGrant(t, "postgres", sqlcap.ModeReadWrite)
		g.DSN += "&deadlock_timeout=200ms&lock_timeout=20s"
		done := make(chan error, 1)
		go func() {
			_, err := open(t, g).Exec(ctx, "UPDATE locks SET v = v + 1 WHERE id + 0 IN (2, 1) AND pg_sleep(CASE id WHEN 1 THEN 0.5 ELSE 0 END) IS NOT NULL", nil)
			done <- err
		}()
		waitBackend(t, "pg_sleep(CASE id", "Timeout") // row 2 is the step's now
		other := make(chan error, 1)
		go func() {
			_, err := tx.Exec("UPDATE locks SET v = v + 1 WHERE id = 2")
			other <- err
		}()
		err = <-done
		want(t, err, sqlcap.ErrUnavailable, abi.CodeResourceUnavailable, true)
		wantState(t, err, "40P01")
		if err := <-other; err != nil {
			t.Errorf("the superuser's side: %v", err)
		}
	})
	t.Run("admin shutdown", func(t *testing.T) {
		db := open(t, pgGrant(t, "postgres", sqlcap.ModeReadOnly))
		done := make(chan error, 1)
		go func() {
			_, err := db.Query(ctx, "SELECT pg_sleep(44)", nil)
			done <- err
		}()
		waitQuery(t, "pg_sleep(44)")
		if _, err := su(t).Exec(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE strpos(query, 'pg_sleep(44)') > 0 AND pid <> pg_backend_pid()`); err != nil {
			t.Fatal(err)
		}
		want(t, <-done, sqlcap.ErrNetwork, abi.CodeNetworkError, true)
	})
}

// TestErrorClasses_sqlite: the same table, produced by SQLite.
func TestErrorClasses_sqlite(t *testing.T) {
	ctx := ctxFor(t)
	t.Run("syntax", func(t *testing.T) {
		_, err := open(t, engines[0].grant(t, sqlcap.ModeReadOnly)).Query(ctx, "SELEC 1", nil)
		want(t, err, sqlcap.ErrInvalid, abi.CodeInvalidInput, false)
	})
	t.Run("constraint", func(t *testing.T) {
		db := open(t, engines[0].grant(t, sqlcap.ModeReadWrite))
		_, err := db.Exec(ctx, "INSERT INTO items (id, name) VALUES (1, 'dup')", nil)
		want(t, err, sqlcap.ErrConstraint, abi.CodeExecutionFailed, false)
	})
	t.Run("read-only", func(t *testing.T) {
		_, err := open(t, engines[0].grant(t, sqlcap.ModeReadOnly)).Exec(ctx, "DELETE FROM items", nil)
		want(t, err, sqlcap.ErrDenied, abi.CodePermissionDenied, false)
	})
	t.Run("busy", func(t *testing.T) {
		g := engines[0].grant(t, sqlcap.ModeReadWrite)
		g.Timeout = 400 * time.Millisecond
		// Another connection holds the write lock.
		other, err := sql.Open("sqlite", g.DSN.Reveal())
		if err != nil {
			t.Fatal(err)
		}
		defer other.Close()
		c, err := other.Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if _, err := c.ExecContext(ctx, "BEGIN EXCLUSIVE"); err != nil {
			t.Fatal(err)
		}
		defer c.ExecContext(context.Background(), "ROLLBACK")
		_, err = open(t, g).Exec(ctx, "UPDATE items SET qty = 1", nil)
		want(t, err, sqlcap.ErrUnavailable, abi.CodeResourceUnavailable, true)
	})
	t.Run("missing file", func(t *testing.T) {
		g := sqlcap.Grant{Name: "app", DSN: sqlcap.Secret(filepath.Join(t.TempDir(), "none.db"))}
		_, err := open(t, g).Query(ctx, "SELECT 1", nil)
		want(t, err, sqlcap.ErrFailed, abi.CodeExecutionFailed, false)
	})
}
