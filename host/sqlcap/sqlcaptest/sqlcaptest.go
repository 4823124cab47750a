// Package sqlcaptest gives tests SQLite databases behind the host's own
// SQL capability: for a block's native tests through sdktest (an
// *sqlcap.DB is an sdktest.SQLDatabase), and for the host's and plugins'
// tests. Statements meet the same checks, caps and errors as under the
// host.
package sqlcaptest

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/blockhost/blockhost/host/sqlcap"
)

// SQLite returns a SQLite database named name, made by the schema
// statements (one statement each, such as a CREATE TABLE and the INSERTs
// that fill it), granted in mode, and closed when t ends.
//
// Under ModeReadWrite the database is in memory. Under ModeReadOnly it is
// a file in t.TempDir(), filled first and then opened read-only, because
// read-only is the database's doing: SQLite enforces it on a file it
// opened read-only.
func SQLite(t testing.TB, name string, mode sqlcap.Mode, schema ...string) *sqlcap.DB {
	t.Helper()
	g := sqlcap.Grant{Name: name, Driver: sqlcap.DriverSQLite, DSN: ":memory:", Mode: sqlcap.ModeReadWrite}
	if mode == sqlcap.ModeReadOnly || mode == "" {
		g.DSN = sqlcap.Secret(filepath.Join(t.TempDir(), name+".db"))
	}
	db := open(t, g)
	for _, s := range schema {
		if _, err := db.Exec(context.Background(), s, nil); err != nil {
			t.Fatalf("sqlcaptest: schema statement %q: %v", s, err)
		}
	}
	if g.DSN == ":memory:" {
		return db
	}
	db.Close()
	g.Mode = sqlcap.ModeReadOnly
	return open(t, g)
}

func open(t testing.TB, g sqlcap.Grant) *sqlcap.DB {
	t.Helper()
	db, err := sqlcap.Open(g, nil)
	if err != nil {
		t.Fatalf("sqlcaptest: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}
