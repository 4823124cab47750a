package sqlcap_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/blockhost/blockhost/abi"
	"github.com/blockhost/blockhost/host/sqlcap"
)

func TestDB_sameQueryBothDrivers(t *testing.T) {
	var got []string
	eachEngine(t, func(t *testing.T, e engine) {
		db := open(t, e.grant(t, sqlcap.ModeReadOnly))
		res, err := db.Query(ctxFor(t), "SELECT id, name, price, qty FROM items WHERE id >= $1 ORDER BY id", []any{int64(2)})
		if err != nil {
			t.Fatal(err)
		}
		b, _ := json.Marshal(res)
		got = append(got, string(b))
	})
	want := `{"columns":["id","name","price","qty"],"rows":[{"id":2,"name":"pear","price":0.75,"qty":0},{"id":3,"name":"plum","price":null,"qty":5}],"row_count":2}`
	for i, g := range got {
		if g != want {
			t.Errorf("%s: got %s\nwant %s", engines[i].name, g, want)
		}
	}
}

func TestDB_jsonParametersTakeTheirColumnsType(t *testing.T) {
	eachEngine(t, func(t *testing.T, e engine) {
		db := open(t, e.grant(t, sqlcap.ModeReadOnly))
		params, err := sqlcap.DecodeParams([]byte(`["apple", 1, 0.5, true, null]`))
		if err != nil {
			t.Fatal(err)
		}
		res, err := db.Query(ctxFor(t), "SELECT id FROM items WHERE name = $1 AND id = $2 AND price = $3 AND $4 AND CAST($5 AS text) IS NULL", params)
		if err != nil {
			t.Fatal(err)
		}
		if res.RowCount() != 1 {
			t.Fatalf("got %d rows, want 1", res.RowCount())
		}
	})
}

func TestDB_injectionStaysData(t *testing.T) {
	attacks := []string{
		"1; DROP TABLE items",
		"' OR '1'='1",
		"1 OR 1=1",
		"apple'; DELETE FROM items; --",
		"$1",
		"x\x00y",
	}
	eachEngine(t, func(t *testing.T, e engine) {
		db := open(t, e.grant(t, sqlcap.ModeReadWrite))
		ctx := ctxFor(t)
		for _, a := range attacks {
			res, err := db.Query(ctx, "SELECT id FROM items WHERE name = $1", []any{a})
			if err != nil && !(e.name == "postgres" && strings.Contains(a, "\x00")) {
				t.Errorf("%q: %v", a, err)
				continue
			}
			if err == nil && res.RowCount() != 0 {
				t.Errorf("%q matched %d rows: a parameter was read as SQL", a, res.RowCount())
			}
			if _, err := db.Exec(ctx, "UPDATE items SET name = name WHERE name = $1", []any{a}); err != nil && !strings.Contains(a, "\x00") {
				t.Errorf("exec %q: %v", a, err)
			}
		}
		res, err := db.Query(ctx, "SELECT count(*) AS n FROM items", nil)
		if err != nil {
			t.Fatal(err)
		}
		if string(res.Rows[0]) != `{"n":3}` {
			t.Errorf("items after the attempts: %s, want 3 rows", res.Rows[0])
		}
	})
}

func TestDB_oneStatementPerCall(t *testing.T) {
	scripts := []string{
		"SELECT 1; DELETE FROM items",
		"SELECT 1;DELETE FROM items;",
		"SELECT ';' AS x; DELETE FROM items",
		"SELECT 1 /* ; */; DELETE FROM items",
		"SELECT 1 -- ;\n; DELETE FROM items",
	}
	eachEngine(t, func(t *testing.T, e engine) {
		db := open(t, e.grant(t, sqlcap.ModeReadWrite))
		ctx := ctxFor(t)
		for _, s := range scripts {
			if _, err := db.Query(ctx, s, nil); !errors.Is(err, sqlcap.ErrInvalid) {
				t.Errorf("query %q: got %v, want ErrInvalid", s, err)
			}
			if _, err := db.Exec(ctx, s, nil); !errors.Is(err, sqlcap.ErrInvalid) {
				t.Errorf("exec %q: got %v, want ErrInvalid", s, err)
			}
		}
		// One statement, with a ';' in a literal, a comment and at the
		// end, is one.
		for _, s := range []string{"SELECT ';' AS x", "SELECT 1 AS x; -- done", "SELECT 1 AS x /* ; */;"} {
			if _, err := db.Query(ctx, s, nil); err != nil {
				t.Errorf("query %q: %v", s, err)
			}
		}
		res, err := db.Query(ctx, "SELECT count(*) AS n FROM items", nil)
		if err != nil {
			t.Fatal(err)
		}
		if string(res.Rows[0]) != `{"n":3}` {
			t.Errorf("items: %s, want 3: a second statement ran", res.Rows[0])
		}
	})
}

// TestDB_readOnlyByTheDatabase: under ro every write is refused by the
// database (the error carries the database's own code), the same write
// succeeds under rw, and no statement lifts read-only for the next one.
func TestDB_readOnlyByTheDatabase(t *testing.T) {
	writes := []struct{ op, stmt string }{
		{"exec", "INSERT INTO items (id, name) VALUES (9, 'fig')"},
		{"exec", "UPDATE items SET qty = 1"},
		{"exec", "DELETE FROM items"},
		{"query", "INSERT INTO items (id, name) VALUES (9, 'fig') RETURNING id"},
		{"exec", "CREATE TABLE t2 (x int)"},
		{"exec", "DROP TABLE items"},
	}
	const ddl = 4 // writes from here on are tried under ro only
	readOnlyState := map[string]string{"sqlite": "SQLITE_READONLY", "postgres": "25006"}
	eachEngine(t, func(t *testing.T, e engine) {
		for _, mode := range []sqlcap.Mode{sqlcap.ModeReadOnly, sqlcap.ModeReadWrite} {
			g := e.grant(t, mode)
			g.MaxConns = 1 // one connection: what one statement sets, the next one meets
			db := open(t, g)
			ctx := ctxFor(t)
			// Attempts to lift read-only for the statements after.
			lifts := map[string][]string{
				"sqlite":   {"PRAGMA query_only = 0", "PRAGMA query_only = false"},
				"postgres": {"SET default_transaction_read_only = off", "SET SESSION CHARACTERISTICS AS TRANSACTION READ WRITE", "SET TRANSACTION READ WRITE"},
			}[e.name]
			for _, l := range lifts {
				db.Exec(ctx, l, nil)
			}
			for i, w := range writes {
				if mode == sqlcap.ModeReadWrite && i >= ddl {
					break
				}
				var err error
				if w.op == "exec" {
					_, err = db.Exec(ctx, w.stmt, nil)
				} else {
					_, err = db.Query(ctx, w.stmt, nil)
				}
				if mode == sqlcap.ModeReadWrite {
					if err != nil && !strings.HasPrefix(w.stmt, "INSERT") {
						t.Errorf("rw %s: %v", w.stmt, err)
					}
					continue
				}
				var se *sqlcap.Error
				if !errors.As(err, &se) || se.Kind != sqlcap.ErrDenied {
					t.Errorf("ro %s: got %v, want ErrDenied", w.stmt, err)
					continue
				}
				if !strings.HasPrefix(se.SQLState, readOnlyState[e.name]) {
					t.Errorf("ro %s: refused with %q, want the database's %s", w.stmt, se.SQLState, readOnlyState[e.name])
				}
				if c := sqlcap.Classify(err); c.Code != abi.CodePermissionDenied || c.Retryable {
					t.Errorf("ro %s: classified %+v", w.stmt, c)
				}
			}
		}
	})
}

// TestDB_sqliteStaysInItsFile: a SQLite grant reaches its one file:
// ATTACH, VACUUM INTO and pragmas that change the connection are refused,
// in either mode.
func TestDB_sqliteStaysInItsFile(t *testing.T) {
	other := t.TempDir()
	for _, mode := range []sqlcap.Mode{sqlcap.ModeReadOnly, sqlcap.ModeReadWrite} {
		db := open(t, engines[0].grant(t, mode))
		ctx := ctxFor(t)
		for _, s := range []string{
			"ATTACH DATABASE '" + other + "/x.db' AS x",
			"VACUUM INTO '" + other + "/copy.db'",
			"PRAGMA query_only = 0",
			"PRAGMA journal_mode = OFF",
			"PRAGMA database_list",
			"SELECT * FROM pragma_database_list",
		} {
			_, err := db.Exec(ctx, s, nil)
			if !errors.Is(err, sqlcap.ErrDenied) && !errors.Is(err, sqlcap.ErrInvalid) {
				t.Errorf("%s %q: got %v, want refused", mode, s, err)
			}
		}
		if _, err := db.Query(ctx, "PRAGMA table_info(items)", nil); err != nil {
			t.Errorf("%s: PRAGMA table_info: %v", mode, err)
		}
	}
	if left, _ := filepathGlob(other + "/*"); len(left) != 0 {
		t.Errorf("files created outside the grant: %v", left)
	}
}

func TestDB_caps(t *testing.T) {
	eachEngine(t, func(t *testing.T, e engine) {
		ctx := ctxFor(t)
		for _, c := range []struct {
			rows, bytes int
			ok          bool
		}{
			{rows: 3, ok: true},
			{rows: 2},
			{bytes: 200, ok: true},
			{bytes: 60},
		} {
			g := e.grant(t, sqlcap.ModeReadOnly)
			g.MaxRows, g.MaxBytes = c.rows, c.bytes
			db := open(t, g)
			_, err := db.Query(ctx, "SELECT id, name FROM items ORDER BY id", nil)
			if c.ok && err != nil {
				t.Errorf("max_rows %d max_bytes %d: %v", c.rows, c.bytes, err)
			}
			if !c.ok {
				if !errors.Is(err, sqlcap.ErrQuota) {
					t.Errorf("max_rows %d max_bytes %d: got %v, want ErrQuota", c.rows, c.bytes, err)
				} else if cl := sqlcap.Classify(err); cl.Code != abi.CodeQuotaExceeded {
					t.Errorf("classified %+v, want quota_exceeded", cl)
				}
			}
		}
	})
}

// TestDB_capStopsAnEndlessResult: a query with no end is stopped at the
// cap, not read to its end.
func TestDB_capStopsAnEndlessResult(t *testing.T) {
	endless := map[string]string{
		"sqlite":   "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c) SELECT x FROM c",
		"postgres": "SELECT generate_series(1, 1000000000000) AS x", // in the select list, so that it streams
	}
	eachEngine(t, func(t *testing.T, e engine) {
		g := e.grant(t, sqlcap.ModeReadOnly)
		g.MaxRows = 100
		db := open(t, g)
		start := time.Now()
		_, err := db.Query(ctxFor(t), endless[e.name], nil)
		if !errors.Is(err, sqlcap.ErrQuota) {
			t.Fatalf("got %v, want ErrQuota", err)
		}
		if d := time.Since(start); d > hangCatcher {
			t.Errorf("took %s", d)
		}
		if e.name == "postgres" {
			waitNoQuery(t, "generate_series(1, 1000000000000)")
		}
	})
}

func TestDB_timeout(t *testing.T) {
	eachEngine(t, func(t *testing.T, e engine) {
		g := e.grant(t, sqlcap.ModeReadOnly)
		g.Timeout = 300 * time.Millisecond
		db := open(t, g)
		start := time.Now()
		_, err := db.Query(ctxFor(t), e.sleep(41), nil)
		if !errors.Is(err, sqlcap.ErrTimeout) {
			t.Fatalf("got %v, want ErrTimeout", err)
		}
		if d := time.Since(start); d > hangCatcher {
			t.Errorf("took %s", d)
		}
		if c := sqlcap.Classify(err); c.Code != abi.CodeConnectionTimeout || !c.Retryable {
			t.Errorf("classified %+v, want connection_timeout, retryable", c)
		}
		if e.name == "postgres" {
			waitNoQuery(t, "pg_sleep(41)")
		}
		// The pool is still good.
		if _, err := db.Query(ctxFor(t), "SELECT 1 AS x", nil); err != nil {
			t.Errorf("after the timeout: %v", err)
		}
	})
}

// TestDB_cancelStopsTheQueryOnTheServer: cancelling the step's context
// while the statement runs ends the call at once with ErrStepEnded, and
// the statement is gone from the server.
func TestDB_cancelStopsTheQueryOnTheServer(t *testing.T) {
	eachEngine(t, func(t *testing.T, e engine) {
		db := open(t, e.grant(t, sqlcap.ModeReadOnly))
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		done := make(chan error, 1)
		go func() {
			_, err := db.Query(ctx, e.sleep(42), nil)
			done <- err
		}()
		if e.name == "postgres" {
			waitQuery(t, "pg_sleep(42)")
		} else {
			time.Sleep(100 * time.Millisecond)
		}
		cancel()
		var err error
		select {
		case err = <-done:
		case <-time.After(hangCatcher):
			t.Fatal("the query did not end after cancel")
		}
		if !errors.Is(err, sqlcap.ErrStepEnded) {
			t.Fatalf("got %v, want ErrStepEnded", err)
		}
		if c := sqlcap.Classify(err); c.Code != abi.CodeCancelledByUser || c.Result != abi.ResultCancelled {
			t.Errorf("classified %+v, want cancelled_by_user", c)
		}
		if e.name == "postgres" {
			waitNoQuery(t, "pg_sleep(42)")
		}
	})
}

func TestDB_stepDeadlineIsTimeout(t *testing.T) {
	eachEngine(t, func(t *testing.T, e engine) {
		db := open(t, e.grant(t, sqlcap.ModeReadOnly))
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		defer cancel()
		_, err := db.Query(ctx, e.sleep(43), nil)
		if !errors.Is(err, sqlcap.ErrStepEnded) {
			t.Fatalf("got %v, want ErrStepEnded", err)
		}
		if c := sqlcap.Classify(err); c.Code != abi.CodeCancelledByTimeout || c.Result != abi.ResultTimeout {
			t.Errorf("classified %+v, want cancelled_by_timeout", c)
		}
		if e.name == "postgres" {
			waitNoQuery(t, "pg_sleep(43)")
		}
	})
}

// TestDB_poolSharedAndBounded: many steps at once share one bounded pool;
// all succeed and the pool never opens more than max_conns.
func TestDB_poolSharedAndBounded(t *testing.T) {
	eachEngine(t, func(t *testing.T, e engine) {
		g := e.grant(t, sqlcap.ModeReadOnly)
		g.MaxConns = 2
		db := open(t, g)
		ctx := ctxFor(t)
		var wg sync.WaitGroup
		errs := make(chan error, 8*20)
		for range 8 {
			wg.Go(func() {
				for i := range 20 {
					res, err := db.Query(ctx, "SELECT name FROM items WHERE id = $1", []any{int64(i%3 + 1)})
					if err == nil && res.RowCount() != 1 {
						err = errors.New("wrong row count")
					}
					if err != nil {
						errs <- err
					}
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
		if s := db.Stats(); s.MaxOpenConnections != 2 || s.OpenConnections > 2 {
			t.Errorf("pool: %+v", s)
		}
	})
}

func TestDB_deniedOnClose(t *testing.T) {
	db := open(t, engines[0].grant(t, sqlcap.ModeReadOnly))
	db.Close()
	if _, err := db.Query(context.Background(), "SELECT 1", nil); !errors.Is(err, sqlcap.ErrClosed) {
		t.Errorf("got %v, want ErrClosed", err)
	}
}

func TestDB_statementAndParameterCaps(t *testing.T) {
	db := open(t, engines[0].grant(t, sqlcap.ModeReadOnly))
	ctx := ctxFor(t)
	long := "SELECT 1 AS x" + strings.Repeat(" ", sqlcap.MaxStatementBytes)
	if _, err := db.Query(ctx, long, nil); !errors.Is(err, sqlcap.ErrQuota) {
		t.Errorf("long statement: %v", err)
	}
	if _, err := db.Query(ctx, "SELECT 1 AS x", make([]any, sqlcap.MaxParameters+1)); !errors.Is(err, sqlcap.ErrQuota) {
		t.Errorf("many parameters: %v", err)
	}
	if _, err := db.Query(ctx, "SELECT $1 AS x", []any{struct{}{}}); !errors.Is(err, sqlcap.ErrInvalid) {
		t.Errorf("a struct parameter: %v", err)
	}
	if _, err := db.Query(ctx, "  -- nothing\n", nil); !errors.Is(err, sqlcap.ErrInvalid) {
		t.Errorf("empty statement: %v", err)
	}
}

func TestDB_duplicateColumnsRefused(t *testing.T) {
	eachEngine(t, func(t *testing.T, e engine) {
		db := open(t, e.grant(t, sqlcap.ModeReadOnly))
		if _, err := db.Query(ctxFor(t), "SELECT a.id, b.id FROM items a JOIN items b ON a.id = b.id", nil); !errors.Is(err, sqlcap.ErrInvalid) {
			t.Errorf("got %v, want ErrInvalid", err)
		}
		if _, err := db.Query(ctxFor(t), "SELECT a.id, b.id AS id2 FROM items a JOIN items b ON a.id = b.id", nil); err != nil {
			t.Error(err)
		}
	})
}

// TestDB_nothingOutlivesAStatement: what a statement leaves on its pooled
// connection — an open transaction, a setting, a temporary object — does
// not reach the next statement, in either mode.
func TestDB_nothingOutlivesAStatement(t *testing.T) {
	eachEngine(t, func(t *testing.T, e engine) {
		for _, mode := range []sqlcap.Mode{sqlcap.ModeReadOnly, sqlcap.ModeReadWrite} {
			g := e.grant(t, mode)
			g.MaxConns = 1 // every statement on the same connection
			db := open(t, g)
			ctx := ctxFor(t)
			if e.name == "sqlite" {
				for _, s := range []string{"BEGIN", "BEGIN IMMEDIATE", "SAVEPOINT a", "CREATE TEMP TABLE tt (x int)",
					"CREATE TEMP TRIGGER tr AFTER INSERT ON items BEGIN SELECT 1; END"} {
					if _, err := db.Exec(ctx, s, nil); !errors.Is(err, sqlcap.ErrDenied) && !errors.Is(err, sqlcap.ErrInvalid) {
						t.Errorf("%s %q: got %v, want refused", mode, s, err)
					}
				}
				continue
			}
			_, err := db.Exec(ctx, "BEGIN", nil)
			if mode == sqlcap.ModeReadWrite && !errors.Is(err, sqlcap.ErrInvalid) {
				t.Errorf("%s BEGIN: got %v, want ErrInvalid", mode, err)
			}
			db.Exec(ctx, "SET search_path TO nowhere", nil)
			db.Query(ctx, "SELECT pg_advisory_lock(4242)", nil)
			db.Exec(ctx, "PREPARE leaked AS SELECT 1", nil)
			db.Exec(ctx, "SELECT set_config('application_name', 'leaked', false)", nil)
			res, err := db.Query(ctx, "SELECT current_setting('search_path') AS p, current_setting('application_name') AS a, "+
				"current_setting('transaction_read_only') AS ro, count(*) AS n FROM items", nil)
			if err != nil {
				t.Fatalf("%s: %v", mode, err)
			}
			if got := string(res.Rows[0]); strings.Contains(got, "nowhere") || strings.Contains(got, "leaked") {
				t.Errorf("%s: a setting outlived its statement: %s", mode, got)
			}
			var locks int
			if err := su(t).QueryRow("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = 4242").Scan(&locks); err != nil || locks != 0 {
				t.Errorf("%s: %d advisory locks outlived their statement (%v)", mode, locks, err)
			}
			if _, err := db.Exec(ctx, "PREPARE leaked AS SELECT 1", nil); err != nil {
				t.Errorf("%s: a prepared statement outlived its statement: %v", mode, err)
			}
		}
	})
}
