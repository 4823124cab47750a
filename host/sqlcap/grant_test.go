package sqlcap_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/blockhost/blockhost/host/sqlcap"
)

func TestGrant_Validate(t *testing.T) {
	ok := sqlcap.Grant{Name: "orders", Driver: sqlcap.DriverSQLite, DSN: "/srv/orders.db"}
	pgOK := sqlcap.Grant{Name: "orders", Driver: sqlcap.DriverPostgres, DSN: "postgres://app:pw@db:5432/orders"}
	with := func(g sqlcap.Grant, f func(*sqlcap.Grant)) sqlcap.Grant { f(&g); return g }
	// Allowed and denied pairs, field by field.
	cases := []struct {
		name    string
		allowed sqlcap.Grant
		denied  sqlcap.Grant
	}{
		{"name", ok, with(ok, func(g *sqlcap.Grant) { g.Name = "" })},
		{"name chars", with(ok, func(g *sqlcap.Grant) { g.Name = "Orders_2.v-1" }), with(ok, func(g *sqlcap.Grant) { g.Name = "orders db" })},
		{"name start", ok, with(ok, func(g *sqlcap.Grant) { g.Name = "1orders" })},
		{"name length", with(ok, func(g *sqlcap.Grant) { g.Name = "a" + strings.Repeat("b", 63) }), with(ok, func(g *sqlcap.Grant) { g.Name = "a" + strings.Repeat("b", 64) })},
		{"driver", pgOK, with(ok, func(g *sqlcap.Grant) { g.Driver = "mysql" })},
		{"default driver", with(ok, func(g *sqlcap.Grant) { g.Driver = "" }), with(ok, func(g *sqlcap.Grant) { g.Driver = "SQLite" })},
		{"mode", with(ok, func(g *sqlcap.Grant) { g.Mode = sqlcap.ModeReadWrite }), with(ok, func(g *sqlcap.Grant) { g.Mode = "wo" })},
		{"dsn or env", with(ok, func(g *sqlcap.Grant) { g.DSN, g.DSNEnv = "", "ORDERS_DSN" }), with(ok, func(g *sqlcap.Grant) { g.DSN = "" })},
		{"not both", ok, with(ok, func(g *sqlcap.Grant) { g.DSNEnv = "ORDERS_DSN" })},
		{"env name", with(ok, func(g *sqlcap.Grant) { g.DSN, g.DSNEnv = "", "_X1" }), with(ok, func(g *sqlcap.Grant) { g.DSN, g.DSNEnv = "", "1X" })},
		{"sqlite path", with(ok, func(g *sqlcap.Grant) { g.DSN = ":memory:" }), with(ok, func(g *sqlcap.Grant) { g.DSN = "orders.db" })},
		{"sqlite query", ok, with(ok, func(g *sqlcap.Grant) { g.DSN = "/srv/orders.db?mode=rwc" })},
		{"postgres dsn", with(pgOK, func(g *sqlcap.Grant) { g.DSN = "host=db user=app dbname=orders" }), with(pgOK, func(g *sqlcap.Grant) { g.DSN = "postgres://app:pw@db:notaport/orders" })},
		{"nul", ok, with(ok, func(g *sqlcap.Grant) { g.DSN = "/srv/a\x00b" })},
		{"timeout", with(ok, func(g *sqlcap.Grant) { g.Timeout = sqlcap.MaxTimeout }), with(ok, func(g *sqlcap.Grant) { g.Timeout = sqlcap.MaxTimeout + time.Second })},
		{"negative timeout", ok, with(ok, func(g *sqlcap.Grant) { g.Timeout = -time.Second })},
		{"max_rows", with(ok, func(g *sqlcap.Grant) { g.MaxRows = sqlcap.MaxMaxRows }), with(ok, func(g *sqlcap.Grant) { g.MaxRows = -1 })},
		{"max_bytes", with(ok, func(g *sqlcap.Grant) { g.MaxBytes = sqlcap.MaxMaxBytes }), with(ok, func(g *sqlcap.Grant) { g.MaxBytes = sqlcap.MaxMaxBytes + 1 })},
		{"max_conns", with(ok, func(g *sqlcap.Grant) { g.MaxConns = 1 }), with(ok, func(g *sqlcap.Grant) { g.MaxConns = sqlcap.MaxMaxConns + 1 })},
	}
	for _, c := range cases {
		if err := c.allowed.Validate(); err != nil {
			t.Errorf("%s: allowed grant refused: %v", c.name, err)
		}
		err := c.denied.Validate()
		var ge *sqlcap.GrantError
		if !errors.As(err, &ge) {
			t.Errorf("%s: denied grant accepted (%v)", c.name, err)
		}
	}
}

func TestGrant_defaults(t *testing.T) {
	g := sqlcap.Grant{Name: "x", DSN: "/a.db"}.WithDefaults()
	if g.Driver != sqlcap.DriverSQLite || g.Mode != sqlcap.ModeReadOnly || !g.ReadOnly() ||
		g.Timeout != sqlcap.DefaultTimeout || g.MaxRows != sqlcap.DefaultMaxRows ||
		g.MaxBytes != sqlcap.DefaultMaxBytes || g.MaxConns != sqlcap.DefaultMaxConns {
		t.Errorf("defaults: %+v", g)
	}
	if g := (sqlcap.Grant{Name: "x", DSN: ":memory:", MaxConns: 8}).WithDefaults(); g.MaxConns != 1 {
		t.Errorf("an in-memory database has %d connections, want 1", g.MaxConns)
	}
}

func TestParseSpec(t *testing.T) {
	t.Setenv("PWD_TEST", "")
	for _, c := range []struct {
		spec string
		want string // Grant.String()
	}{
		{"orders=sqlite:/srv/orders.db", "orders=sqlite:/srv/orders.db:ro"},
		{"orders=sqlite:/srv/orders.db:rw", "orders=sqlite:/srv/orders.db:rw"},
		{"orders=sqlite:/srv/orders.db:ro", "orders=sqlite:/srv/orders.db:ro"},
		{"m=sqlite::memory:", "m=sqlite::memory::ro"},
		{"orders=postgres:postgres://app:s3cret@db:5432/orders?sslmode=disable:rw", "orders=postgres:postgres://app@db:5432/orders:rw"},
		{"orders=postgres:env:ORDERS_DSN", "orders=postgres:$ORDERS_DSN:ro"},
	} {
		g, err := sqlcap.ParseSpec(c.spec)
		if err != nil {
			t.Errorf("%q: %v", c.spec, err)
			continue
		}
		if got := g.String(); got != c.want {
			t.Errorf("%q: got %s, want %s", c.spec, got, c.want)
		}
	}
	rel, err := sqlcap.ParseSpec("o=sqlite:orders.db")
	if err != nil || !strings.HasPrefix(rel.DSN.Reveal(), "/") {
		t.Errorf("a relative path is made absolute: %v %v", rel.DSN.Reveal(), err)
	}
	for _, spec := range []string{
		"", "orders", "orders=", "orders=sqlite", "orders=sqlite:", "orders=sqlite::rw",
		"=sqlite:/a.db", "or ders=sqlite:/a.db", "orders=mysql:/a.db", "orders=postgres:env:1BAD",
		"orders=postgres:postgres://app:s3cret@db:badport/orders",
	} {
		_, err := sqlcap.ParseSpec(spec)
		var ge *sqlcap.GrantError
		if !errors.As(err, &ge) {
			t.Errorf("%q: got %v, want a GrantError", spec, err)
		}
		if err != nil && strings.Contains(err.Error(), "s3cret") {
			t.Errorf("%q: the error shows the password: %v", spec, err)
		}
	}
}

// TestSecret_neverShown: a DSN's password appears in no print, no JSON,
// no grant description and no error, whichever way it is shown.
func TestSecret_neverShown(t *testing.T) {
	const pw = "s3cret-pw"
	g := sqlcap.Grant{Name: "orders", Driver: sqlcap.DriverPostgres, DSN: sqlcap.Secret("postgres://app:" + pw + "@127.0.0.1:1/orders?sslpassword=" + pw)}
	js, _ := json.Marshal(g)
	shown := []string{
		fmt.Sprint(g), fmt.Sprintf("%v %+v %#v %s %q %x", g, g, g, g.DSN, g.DSN, g.DSN),
		g.String(), g.Describe(), string(js),
	}
	bad := g
	bad.DSN = sqlcap.Secret("postgres://app:" + pw + "@db:nope/x")
	shown = append(shown, fmt.Sprint(bad.Validate()))
	db, err := sqlcap.Open(g, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	_, err = db.Query(t.Context(), "SELECT 1", nil)
	if err == nil {
		t.Fatal("connected to port 1")
	}
	shown = append(shown, err.Error(), fmt.Sprintf("%+v", err))
	for _, s := range shown {
		if strings.Contains(s, pw) {
			t.Errorf("the password shows in %q", s)
		}
	}
}

// TestDescribeGrant: the audit log's step_start record names each
// database, its driver, mode and caps, and never a DSN's password.
func TestDescribeGrant(t *testing.T) {
	set, err := sqlcap.NewSet([]sqlcap.Grant{
		{Name: "orders", Driver: sqlcap.DriverPostgres, DSN: "postgres://app:hunter2@127.0.0.1:5432/orders", Mode: sqlcap.ModeReadWrite},
		{Name: "local", DSNEnv: "LOCAL_DSN"},
	})
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(sqlcap.Capability{}.DescribeGrant(set))
	if err != nil {
		t.Fatal(err)
	}
	got := string(b)
	for _, want := range []string{`"name":"orders"`, `"driver":"postgres"`, `"mode":"rw"`, `postgres://app@127.0.0.1:5432/orders`, `"name":"local"`, `$LOCAL_DSN`, `"mode":"ro"`} {
		if !strings.Contains(got, want) {
			t.Errorf("%s lacks %s", got, want)
		}
	}
	if strings.Contains(got, "hunter2") {
		t.Errorf("the password is in %s", got)
	}
}
