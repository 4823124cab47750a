package sqlcaptest_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"

	"github.com/blockhost/blockhost/abi"
	"github.com/blockhost/blockhost/host/sqlcap"
	"github.com/blockhost/blockhost/host/sqlcap/sqlcaptest"
	"github.com/blockhost/blockhost/sdk"
	"github.com/blockhost/blockhost/sdk/sdktest"
	sdksql "github.com/blockhost/blockhost/sdk/sql"
)

var schema = []string{
	"CREATE TABLE orders (id INTEGER PRIMARY KEY, customer TEXT NOT NULL, total REAL)",
	"INSERT INTO orders VALUES (1, 'ana', 12.5), (2, 'bo', 3), (3, 'ana', 7)",
}

type order struct {
	ID    int64   `json:"id"`
	Total float64 `json:"total"`
}

// totals is a handler as a block author writes it.
func totals(ctx context.Context, in struct{ Customer string }) (any, error) {
	rows, err := sdksql.Open("orders").Query(ctx, "SELECT id, total FROM orders WHERE customer = ? ORDER BY id", in.Customer)
	if err != nil {
		return nil, err
	}
	var got []order
	if err := rows.Scan(&got); err != nil {
		return nil, err
	}
	return got, nil
}

func TestSQLite_handlerNatively(t *testing.T) {
	db := sqlcaptest.SQLite(t, "orders", sqlcap.ModeReadOnly, schema...)
	res := sdktest.Config{
		SQL: map[string]sdktest.SQLDatabase{"orders": db},
	}.Call(t, sdk.JSONHandler(totals), []byte(`{"Customer":"ana"}`))
	if res.Status != abi.StatusSuccess {
		t.Fatalf("status %s: %v", res.Status, res.Err)
	}
	var got []order
	json.Unmarshal(res.Output, &got)
	if len(got) != 2 || got[0].ID != 1 || got[1].Total != 7 {
		t.Errorf("output %s", res.Output)
	}
	// An injection attempt stays a value.
	res = sdktest.Config{
		SQL: map[string]sdktest.SQLDatabase{"orders": db},
	}.Call(t, sdk.JSONHandler(totals), []byte(`{"Customer":"x' OR '1'='1"}`))
	if string(res.Output) != "[]" {
		t.Errorf("injection: output %s", res.Output)
	}
}

func TestSQLite_errorsReachTheHandler(t *testing.T) {
	ro := sqlcaptest.SQLite(t, "orders", sqlcap.ModeReadOnly, schema...)
	rw := sqlcaptest.SQLite(t, "orders", sqlcap.ModeReadWrite, schema...)
	write := func(ctx context.Context, _ struct{}) (any, error) {
		res, err := sdksql.Open("orders").Exec(ctx, "UPDATE orders SET total = total + 1")
		return res.RowsAffected, err
	}
	for _, c := range []struct {
		name string
		dbs  map[string]sdktest.SQLDatabase
		code abi.Code
		is   error
	}{
		{"read-only", map[string]sdktest.SQLDatabase{"orders": ro}, abi.CodePermissionDenied, sdk.ErrDenied},
		{"not granted", nil, abi.CodePermissionDenied, sdk.ErrDenied},
		{"read-write", map[string]sdktest.SQLDatabase{"orders": rw}, 0, nil},
	} {
		res := sdktest.Config{SQL: c.dbs}.Call(t, sdk.JSONHandler(write), []byte("{}"))
		if c.is == nil {
			if res.Status != abi.StatusSuccess || string(res.Output) != "3" {
				t.Errorf("%s: %s %s %v", c.name, res.Status, res.Output, res.Err)
			}
			continue
		}
		if res.Err == nil || res.Err.Code != c.code {
			t.Errorf("%s: got %v, want %s", c.name, res.Err, c.code)
		}
	}
	// The sdk error matches the result sentinel.
	res := sdktest.Config{SQL: map[string]sdktest.SQLDatabase{"orders": ro}}.Call(t, sdk.JSONHandler(func(ctx context.Context, _ struct{}) (any, error) {
		_, err := sdksql.Open("orders").Query(ctx, "SELEC 1")
		if !errors.Is(err, sdk.ErrInvalid) {
			t.Errorf("syntax error: %v does not match sdk.ErrInvalid", err)
		}
		return nil, err
	}), []byte("{}"))
	if res.Err == nil || res.Err.Code != abi.CodeInvalidInput {
		t.Errorf("syntax error: step error %v", res.Err)
	}
}

func TestRows_maps(t *testing.T) {
	db := sqlcaptest.SQLite(t, "orders", sqlcap.ModeReadWrite, schema...)
	sdktest.Config{SQL: map[string]sdktest.SQLDatabase{"orders": db}}.Call(t, sdk.JSONHandler(func(ctx context.Context, _ struct{}) (any, error) {
		rows, err := sdksql.Open("orders").Query(ctx, "SELECT id, customer, total FROM orders WHERE id = $1", 2)
		if err != nil {
			t.Fatal(err)
		}
		m, err := rows.Maps()
		if err != nil || len(m) != 1 || m[0]["id"] != int64(2) || m[0]["customer"] != "bo" || m[0]["total"] != int64(3) {
			t.Errorf("maps %v %v", m, err)
		}
		if rows.Columns[1] != "customer" {
			t.Errorf("columns %v", rows.Columns)
		}
		return nil, nil
	}), []byte("{}"))
}
