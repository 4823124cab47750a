package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/blockhost/blockhost/abi"
	"github.com/blockhost/blockhost/host/sqlcap"
	"github.com/blockhost/blockhost/internal/testwasm"
)

// TestRun_sqlQuery runs sql.query and sql.exec through the command line
// as a user types them: --allow-sql grants the database, read-only unless
// :rw; the manifest's sql section does the same; a bad --allow-sql is a
// usage error that does not show the DSN.
func TestRun_sqlQuery(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "shop.db")
	rw, err := sqlcap.Open(sqlcap.Grant{Name: "shop", DSN: sqlcap.Secret(path), Mode: sqlcap.ModeReadWrite}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"CREATE TABLE orders (id int PRIMARY KEY, customer text, total float8)",
		"INSERT INTO orders VALUES (1, 'ana', 12.5), (2, 'bo', 3)"} {
		if _, err := rw.Exec(context.Background(), s, nil); err != nil {
			t.Fatal(err)
		}
	}
	rw.Close()

	query := `{"query":"SELECT id, total FROM orders WHERE customer = ?","parameters":["ana"]}`
	r := runCLI(t, "", "--log-level", "off", "run", "--no-cache", "--allow-sql", "shop=sqlite:"+path, "--input", query, "sql.query")
	if r.code != exitSuccess || r.res.Status != abi.StatusSuccess || !strings.Contains(compact(r.res.Output), `"rows":[{"id":1,"total":12.5}],"row_count":1`) {
		t.Fatalf("query: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	update := `{"database":"shop","query":"UPDATE orders SET total = total + 1 WHERE id = ?","parameters":[2]}`
	r = runCLI(t, "", "--log-level", "off", "run", "--no-cache", "--allow-sql", "shop=sqlite:"+path, "--input", update, "sql.exec")
	if r.code != exitError || r.res.Error == nil || r.res.Error.Code != abi.CodePermissionDenied {
		t.Fatalf("exec under ro: exit %d\n%s", r.code, r.stdout)
	}
	r = runCLI(t, "", "--log-level", "off", "run", "--no-cache", "--allow-sql", "shop=sqlite:"+path+":rw", "--input", update, "sql.exec")
	if r.code != exitSuccess || compact(r.res.Output) != `{"rows_affected":1}` {
		t.Fatalf("exec under rw: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}

	// The manifest's section, for a WebAssembly block.
	wasm := filepath.Join(dir, "sqlblock.wasm")
	if err := os.WriteFile(wasm, testwasm.Go(t, "../../host/sqlcap/testdata/sqlblock"), 0o644); err != nil {
		t.Fatal(err)
	}
	manifest := filepath.Join(dir, "shop.hcl")
	os.WriteFile(manifest, []byte(`block "shop" {
  module = "sqlblock.wasm"
  capabilities {
    sql {
      database "shop" {
        dsn      = "./shop.db"
        max_rows = 1
      }
    }
  }
}
`), 0o644)
	r = runCLI(t, "", "--log-level", "off", "run", "--no-cache", "-m", manifest, "--input", `{"database":"shop","query":"SELECT id FROM orders"}`)
	if r.code != exitError || r.res.Error == nil || r.res.Error.Code != abi.CodeQuotaExceeded {
		t.Fatalf("manifest with max_rows 1: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}

	for _, bad := range []string{"shop", "shop=mysql:/x.db", "shop=postgres:postgres://app:s3cret@db:bad/x"} {
		r = runCLI(t, "", "--log-level", "off", "run", "--no-cache", "--allow-sql", bad, "--input", query, "sql.query")
		if r.code != exitUsage {
			t.Errorf("--allow-sql %q: exit %d, want %d\n%s", bad, r.code, exitUsage, r.stderr)
		}
		if strings.Contains(r.stderr, "s3cret") || strings.Contains(r.stdout, "s3cret") {
			t.Errorf("--allow-sql %q: the password shows:\n%s", bad, r.stderr)
		}
	}
}

func compact(b []byte) string {
	var buf bytes.Buffer
	json.Compact(&buf, b)
	return buf.String()
}

// TestBatch_sqlDependency: batch's sql.query lines depend on the database
// they name, sql:NAME, before they run: after five refused connections to
// database down, its circuit is open and the next lines on down fail fast
// without an attempt (resource_unavailable, permanent, with a retry
// hint), while a line on another database still runs.
func TestBatch_sqlDependency(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	shop := filepath.Join(t.TempDir(), "shop.db")
	db, err := sqlcap.Open(sqlcap.Grant{Name: "shop", DSN: sqlcap.Secret(shop), Mode: sqlcap.ModeReadWrite}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(context.Background(), "CREATE TABLE t (id int)", nil); err != nil {
		t.Fatal(err)
	}
	db.Close()
	var lines []string
	for i := range 7 {
		lines = append(lines, fmt.Sprintf(`{"step_id":"down%d","block":"sql.query","input":{"database":"down","query":"SELECT 1"}}`, i+1))
	}
	lines = append(lines, `{"step_id":"shop","block":"sql.query","input":{"database":"shop","query":"SELECT count(*) AS n FROM t"}}`)
	out := filepath.Join(t.TempDir(), "out.jsonl")
	r := runCLI(t, "", "--log-level", "off", "batch", "--no-cache", "-c", "1", "--max-attempts", "1", "-o", out,
		"--allow-sql", fmt.Sprintf("down=postgres:postgres://app@127.0.0.1:%d/app?sslmode=disable", port),
		"--allow-sql", "shop=sqlite:"+shop, writeLines(t, lines))
	if r.code != exitError {
		t.Fatalf("exit %d, want %d\n%s", r.code, exitError, r.stderr)
	}
	byID := resultsByID(t, out)
	for i := 1; i <= 7; i++ {
		res := byID[fmt.Sprintf("down%d", i)]
		switch {
		case res.Error == nil:
			t.Errorf("down%d: %s, no error", i, res.Status)
		case i <= 5 && (res.Attempts != 1 || res.Error.Code != abi.CodeNetworkError):
			t.Errorf("down%d: attempts %d, %+v; want one attempt refused", i, res.Attempts, res.Error)
		case i > 5 && (res.Attempts != 0 || res.Error.Code != abi.CodeResourceUnavailable || res.Error.RetryAfterMS == nil):
			t.Errorf("down%d: attempts %d, %+v; want no attempt, the circuit of sql:down open", i, res.Attempts, res.Error)
		}
	}
	if res := byID["shop"]; res.Status != abi.StatusSuccess {
		t.Errorf("shop: %s %+v", res.Status, res.Error)
	}
}
