package main

import (
	"bytes"
	"context"
	"encoding/json"
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
