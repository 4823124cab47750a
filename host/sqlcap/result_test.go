package sqlcap_test

import (
	"errors"
	"math"
	"reflect"
	"testing"

	"github.com/blockhost/blockhost/host/sqlcap"
)

func TestDecodeParams(t *testing.T) {
	got, err := sqlcap.DecodeParams([]byte(`[null, true, 42, -1.5, "x", 9007199254740993]`))
	if err != nil {
		t.Fatal(err)
	}
	want := []any{nil, true, int64(42), -1.5, "x", int64(9007199254740993)}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %#v, want %#v", got, want)
	}
	if got, err := sqlcap.DecodeParams(nil); err != nil || got != nil {
		t.Errorf("no parameters: %v %v", got, err)
	}
	for _, bad := range []string{`{"a":1}`, `[{"a":1}]`, `[[1]]`, `[1e999]`, `[1,`, `"x"`} {
		if _, err := sqlcap.DecodeParams([]byte(bad)); !errors.Is(err, sqlcap.ErrInvalid) {
			t.Errorf("%s: got %v, want ErrInvalid", bad, err)
		}
	}
}

func TestResult_valuesAsJSON(t *testing.T) {
	db := open(t, sqlcap.Grant{Name: "m", DSN: ":memory:", Mode: sqlcap.ModeReadWrite})
	ctx := ctxFor(t)
	res, err := db.Query(ctx, "SELECT 1 AS i, 1.5 AS f, 'a\"b' AS s, x'00ff' AS b, NULL AS n, $1 AS inf", []any{math.Inf(1)})
	if err != nil {
		t.Fatal(err)
	}
	const want = `{"i":1,"f":1.5,"s":"a\"b","b":"AP8=","n":null,"inf":"+Inf"}`
	if len(res.Rows) != 1 || string(res.Rows[0]) != want {
		t.Errorf("got %s, want %s", res.Rows, want)
	}
}
