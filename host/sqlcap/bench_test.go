package sqlcap_test

import (
	"testing"

	"github.com/blockhost/blockhost/host/sqlcap"
)

// BenchmarkDB_selectByKey is the capability's share of a sql.query step on
// SQLite: one statement, one row.
func BenchmarkDB_selectByKey(b *testing.B) {
	db := open(b, engines[0].grant(b, sqlcap.ModeReadOnly))
	ctx := b.Context()
	params := []any{int64(2)}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := db.Query(ctx, "SELECT id, name, price FROM items WHERE id = ?", params); err != nil {
			b.Fatal(err)
		}
	}
}
