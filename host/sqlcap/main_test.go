package sqlcap_test

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/blockhost/blockhost/host/sqlcap"
	"github.com/blockhost/blockhost/internal/pgtest"
	"go.uber.org/goleak"
)

// pg is this package's PostgreSQL server, started by the first test that
// needs it.
var pg = &pgtest.Lazy{Setup: func(s *pgtest.Server) error {
	for _, q := range []struct{ db, sql string }{
		{"postgres", "CREATE DATABASE app"},
		{"app", `
CREATE TABLE items (id int PRIMARY KEY, name text NOT NULL, price float8, qty int CHECK (qty >= 0), data bytea);
INSERT INTO items VALUES (1, 'apple', 0.5, 10, '\x0102'), (2, 'pear', 0.75, 0, NULL), (3, 'plum', NULL, 5, NULL);
CREATE TABLE secrets (id int);
CREATE TABLE locks (id int PRIMARY KEY, v int);
INSERT INTO locks VALUES (2, 0), (1, 0);
CREATE ROLE reader LOGIN;
GRANT SELECT ON items TO reader;
CREATE ROLE limited LOGIN CONNECTION LIMIT 1;
GRANT SELECT ON items TO limited;`},
	} {
		if out, err := s.Psql(q.db, q.sql); err != nil {
			return fmt.Errorf("%v: %s", err, out)
		}
	}
	return nil
}}

func TestMain(m *testing.M) {
	code := m.Run()
	closeRuntimes()
	if suDB != nil {
		suDB.Close()
	}
	sqlcap.ClosePools()
	pg.Stop()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goroutines left running:", err)
			code = 1
		}
	}
	os.Exit(code)
}

// open opens g and closes it when t ends.
func open(t testing.TB, g sqlcap.Grant) *sqlcap.DB {
	t.Helper()
	db, err := sqlcap.Open(g, nil)
	if err != nil {
		t.Fatalf("Open(%s): %v", g, err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// sqliteFile makes a SQLite database with the same items table as the
// PostgreSQL one and returns its path.
func sqliteFile(t testing.TB) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "app.db")
	raw, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	_, err = raw.Exec(`
CREATE TABLE items (id int PRIMARY KEY, name text NOT NULL, price float8, qty int CHECK (qty >= 0), data blob);
INSERT INTO items VALUES (1, 'apple', 0.5, 10, x'0102'), (2, 'pear', 0.75, 0, NULL), (3, 'plum', NULL, 5, NULL);
CREATE TABLE secrets (id int);`)
	if err != nil {
		t.Fatal(err)
	}
	return path
}

// engine is a database under test: a grant maker for each driver.
type engine struct {
	name  string
	grant func(t testing.TB, mode sqlcap.Mode) sqlcap.Grant
	// sleep is a statement that runs for about n seconds, or until it is
	// stopped.
	sleep func(n int) string
}

var engines = []engine{
	{
		name: "sqlite",
		grant: func(t testing.TB, mode sqlcap.Mode) sqlcap.Grant {
			return sqlcap.Grant{Name: "app", Driver: sqlcap.DriverSQLite, DSN: sqlcap.Secret(sqliteFile(t)), Mode: mode}
		},
		// A recursive count: billions of steps, stopped only by an
		// interrupt.
		sleep: func(n int) string {
			return fmt.Sprintf("WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c WHERE x < %d) SELECT max(x) FROM c", n*1_000_000_000)
		},
	},
	{
		name: "postgres",
		grant: func(t testing.TB, mode sqlcap.Mode) sqlcap.Grant {
			s := pg.Require(t)
			resetPG(t, s)
			return sqlcap.Grant{Name: "app", Driver: sqlcap.DriverPostgres, DSN: sqlcap.Secret(s.DSN("postgres", "app")), Mode: mode}
		},
		sleep: func(n int) string { return fmt.Sprintf("SELECT pg_sleep(%d)", n) },
	},
}

// resetPG puts the items table back as Setup made it.
func resetPG(t testing.TB, s *pgtest.Server) {
	t.Helper()
	if out, err := s.Psql("app", `DELETE FROM items; INSERT INTO items VALUES (1, 'apple', 0.5, 10, '\x0102'), (2, 'pear', 0.75, 0, NULL), (3, 'plum', NULL, 5, NULL)`); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
}

// eachEngine runs f once per engine, as a subtest.
func eachEngine(t *testing.T, f func(t *testing.T, e engine)) {
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) { f(t, e) })
	}
}

// hangCatcher is a generous bound on what should take well under a
// second: it only catches a hang.
const hangCatcher = 20 * time.Second

func ctxFor(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*hangCatcher)
	t.Cleanup(cancel)
	return ctx
}
