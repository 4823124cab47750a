package sqlquery_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/blockhost/blockhost/abi"
	"github.com/blockhost/blockhost/host"
	"github.com/blockhost/blockhost/host/capability"
	"github.com/blockhost/blockhost/host/sqlcap"
	"github.com/blockhost/blockhost/internal/pgtest"
	"github.com/blockhost/blockhost/plugins"
	"github.com/blockhost/blockhost/plugins/sqlquery"
)

var pg = &pgtest.Lazy{Setup: func(s *pgtest.Server) error {
	if out, err := s.Psql("postgres", "CREATE DATABASE shop"); err != nil {
		return fmt.Errorf("%v: %s", err, out)
	}
	if out, err := s.Psql("shop", "CREATE TABLE orders (id int PRIMARY KEY, customer text NOT NULL, total float8); "+
		"INSERT INTO orders VALUES (1, 'ana', 12.5), (2, 'bo', 3), (3, 'ana', 7)"); err != nil {
		return fmt.Errorf("%v: %s", err, out)
	}
	return nil
}}

func TestMain(m *testing.M) {
	code := m.Run()
	sqlcap.ClosePools()
	pg.Stop()
	os.Exit(code)
}

var schema = []string{
	"CREATE TABLE orders (id int PRIMARY KEY, customer text NOT NULL, total float8)",
	"INSERT INTO orders VALUES (1, 'ana', 12.5), (2, 'bo', 3), (3, 'ana', 7)",
}

// databases returns a Set with one database "shop" on the driver, in mode.
func databases(t *testing.T, driver sqlcap.Driver, mode sqlcap.Mode) *sqlcap.Set {
	return databasesTB(t, driver, mode)
}

func databasesTB(t testing.TB, driver sqlcap.Driver, mode sqlcap.Mode) *sqlcap.Set {
	t.Helper()
	g := sqlcap.Grant{Name: "shop", Driver: driver, Mode: mode}
	switch driver {
	case sqlcap.DriverPostgres:
		g.DSN = sqlcap.Secret(pg.Require(t).DSN("postgres", "shop"))
	default:
		path := filepath.Join(t.TempDir(), "shop.db")
		rw, err := sqlcap.Open(sqlcap.Grant{Name: "x", DSN: sqlcap.Secret(path), Mode: sqlcap.ModeReadWrite}, nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range schema {
			if _, err := rw.Exec(context.Background(), s, nil); err != nil {
				t.Fatal(err)
			}
		}
		rw.Close()
		g.DSN = sqlcap.Secret(path)
	}
	set, err := sqlcap.NewSet([]sqlcap.Grant{g})
	if err != nil {
		t.Fatal(err)
	}
	return set
}

var drivers = []sqlcap.Driver{sqlcap.DriverSQLite, sqlcap.DriverPostgres}

func TestQuery_sameStepBothDatabases(t *testing.T) {
	const in = `{"database":"shop","query":"SELECT id, total FROM orders WHERE customer = $1 ORDER BY id","parameters":["ana"]}`
	const want = `{"columns":["id","total"],"rows":[{"id":1,"total":12.5},{"id":3,"total":7}],"row_count":2}`
	for _, d := range drivers {
		t.Run(string(d), func(t *testing.T) {
			out, err := sqlquery.Query(context.Background(), databases(t, d, sqlcap.ModeReadOnly), []byte(in))
			if err != nil {
				t.Fatal(err)
			}
			if string(out) != want {
				t.Errorf("got %s\nwant %s", out, want)
			}
		})
	}
}

func TestQuery_injectionStaysData(t *testing.T) {
	for _, d := range drivers {
		t.Run(string(d), func(t *testing.T) {
			set := databases(t, d, sqlcap.ModeReadWrite)
			for _, p := range []string{`"ana' OR '1'='1"`, `"1; DELETE FROM orders"`, `"ana'; DROP TABLE orders; --"`} {
				in := `{"query":"SELECT id FROM orders WHERE customer = $1","parameters":[` + p + `]}`
				out, err := sqlquery.Query(context.Background(), set, []byte(in))
				if err != nil || !strings.Contains(string(out), `"row_count":0`) {
					t.Errorf("%s: %s %v", p, out, err)
				}
			}
			out, err := sqlquery.Query(context.Background(), set, []byte(`{"query":"SELECT count(*) AS n FROM orders"}`))
			if err != nil || !strings.Contains(string(out), `{"n":3}`) {
				t.Errorf("after the attempts: %s %v", out, err)
			}
		})
	}
}

func TestExec_readOnlyAndReadWrite(t *testing.T) {
	const in = `{"database":"shop","query":"UPDATE orders SET total = total + $1 WHERE customer = $2","parameters":[1, "ana"]}`
	for _, d := range drivers {
		t.Run(string(d), func(t *testing.T) {
			_, err := sqlquery.Exec(context.Background(), databases(t, d, sqlcap.ModeReadOnly), []byte(in))
			wantCode(t, err, abi.CodePermissionDenied)
			out, err := sqlquery.Exec(context.Background(), databases(t, d, sqlcap.ModeReadWrite), []byte(in))
			if err != nil || string(out) != `{"rows_affected":2}` {
				t.Errorf("rw: %s %v", out, err)
			}
			if d == sqlcap.DriverPostgres {
				pg.Require(t).Psql("shop", "UPDATE orders SET total = total - 1 WHERE customer = 'ana'")
			}
		})
	}
}

func wantCode(t *testing.T, err error, code abi.Code) {
	t.Helper()
	var e *abi.Error
	if !errors.As(err, &e) || e.Code != code {
		t.Fatalf("got %v, want %s", err, code)
	}
}

// TestQuery_databaseAndConnectionString: the input names a granted
// database, by database or by the original's connection_string; a
// connection string that is not a name is refused, never used, never
// echoed.
func TestQuery_databaseAndConnectionString(t *testing.T) {
	set := databases(t, sqlcap.DriverSQLite, sqlcap.ModeReadOnly)
	ctx := context.Background()
	for _, in := range []string{
		`{"query":"SELECT 1 AS x"}`,
		`{"database":"shop","query":"SELECT 1 AS x"}`,
		`{"connection_string":"shop","query":"SELECT 1 AS x"}`,
		`{"database":"shop","connection_string":"shop","statement":"SELECT 1 AS x"}`,
	} {
		if _, err := sqlquery.Query(ctx, set, []byte(in)); err != nil {
			t.Errorf("%s: %v", in, err)
		}
	}
	for _, c := range []struct {
		in   string
		code abi.Code
	}{
		{`{"connection_string":"sqlite://db.sqlite","query":"SELECT 1"}`, abi.CodePermissionDenied},
		{`{"connection_string":"postgres://app:s3cret@10.0.0.1/prod","query":"SELECT 1"}`, abi.CodePermissionDenied},
		{`{"connection_string":"/etc/passwd","query":"SELECT 1"}`, abi.CodePermissionDenied},
		{`{"database":"prod","query":"SELECT 1"}`, abi.CodePermissionDenied},
		{`{"database":"shop","connection_string":"other","query":"SELECT 1"}`, abi.CodeInvalidInput},
		{`{"database":"shop"}`, abi.CodeMissingRequiredField},
		{`{"database":"shop","query":"SELECT 1","dsn":"x"}`, abi.CodeInvalidFormat},
		{`["SELECT 1"]`, abi.CodeInvalidFormat},
		{`{"database":"shop","query":"SELECT 1","parameters":{"a":1}}`, abi.CodeInvalidInput},
		{`{"database":"shop","query":"SELECT 1; SELECT 2"}`, abi.CodeInvalidInput},
	} {
		_, err := sqlquery.Query(ctx, set, []byte(c.in))
		var e *abi.Error
		if !errors.As(err, &e) || e.Code != c.code {
			t.Errorf("%s: got %v, want %s", c.in, err, c.code)
			continue
		}
		if strings.Contains(e.Message, "s3cret") || strings.Contains(e.Message, "10.0.0.1") {
			t.Errorf("%s: the message echoes the connection string: %s", c.in, e.Message)
		}
	}
	two, err := sqlcap.NewSet([]sqlcap.Grant{{Name: "a", DSN: ":memory:"}, {Name: "b", DSN: ":memory:"}})
	if err != nil {
		t.Fatal(err)
	}
	_, err = sqlquery.Query(ctx, two, []byte(`{"query":"SELECT 1"}`))
	wantCode(t, err, abi.CodeMissingRequiredField)
	_, err = sqlquery.Query(ctx, nil, []byte(`{"database":"a","query":"SELECT 1"}`))
	wantCode(t, err, abi.CodePermissionDenied)
}

func TestQuery_caps(t *testing.T) {
	g := sqlcap.Grant{Name: "m", DSN: ":memory:", MaxRows: 2}
	set, err := sqlcap.NewSet([]sqlcap.Grant{g})
	if err != nil {
		t.Fatal(err)
	}
	_, err = sqlquery.Query(context.Background(), set, []byte(`{"query":"SELECT 1 UNION ALL SELECT 2 UNION ALL SELECT 3"}`))
	wantCode(t, err, abi.CodeQuotaExceeded)
}

// TestQuery_audited: the built-in blocks record each statement through
// the step's audit hook — the database named, never the statement or its
// parameters — and a database the step was not granted as a refusal.
func TestQuery_audited(t *testing.T) {
	set := databases(t, sqlcap.DriverSQLite, sqlcap.ModeReadOnly)
	p, ok := plugins.Lookup(sqlquery.QueryName)
	if !ok {
		t.Fatal("sql.query is not registered")
	}
	var got []capability.Event
	run := func(input string) {
		call := &host.Call{
			Step:  host.Step{Input: []byte(input), Grants: host.Grants{Caps: map[string]any{sqlcap.Name: set}}},
			Audit: func(e capability.Event) { got = append(got, e) },
		}
		p.Run(context.Background(), call)
	}
	run(`{"database":"shop","query":"SELECT customer FROM orders WHERE id = ?","parameters":[1]}`)
	run(`{"database":"payroll","query":"SELECT 1"}`)
	if len(got) != 2 {
		t.Fatalf("%d events, want 2: %+v", len(got), got)
	}
	if e := got[0]; e.Capability != sqlcap.Name || e.Op != "query" || e.Target != "shop" || e.Denied || e.Error != "" || e.Bytes == 0 {
		t.Errorf("allowed query: %+v", e)
	}
	if e := got[1]; e.Target != "payroll" || !e.Denied {
		t.Errorf("query of an ungranted database: %+v", e)
	}
	for _, e := range got {
		if strings.Contains(fmt.Sprint(e), "SELECT") {
			t.Errorf("the statement is in the audit event: %+v", e)
		}
	}
}
