// Command sqlblock is an SDK block that runs the statement its input
// gives, through sdk/sql, for the SQL capability's tests:
//
//	{"database": "app", "query": "SELECT …", "params": [...]}               rows, as sdk/sql's Maps
//	{"database": "app", "query": "UPDATE …", "params": [...], "exec": true}  {"rows_affected": N}
//
// A failure is the step's error, as sdk/sql reports it.
package main

import (
	"context"
	"encoding/json"

	"github.com/blockhost/blockhost/sdk"
	"github.com/blockhost/blockhost/sdk/sql"
)

type input struct {
	Database string `json:"database"`
	Query    string `json:"query"`
	Params   []any  `json:"params"`
	Exec     bool   `json:"exec"`
}

func run(ctx context.Context, in input) (json.RawMessage, error) {
	db := sql.Open(in.Database)
	if in.Exec {
		res, err := db.Exec(ctx, in.Query, in.Params...)
		if err != nil {
			return nil, err
		}
		return json.Marshal(map[string]int64{"rows_affected": res.RowsAffected})
	}
	rows, err := db.Query(ctx, in.Query, in.Params...)
	if err != nil {
		return nil, err
	}
	m, err := rows.Maps()
	if err != nil {
		return nil, err
	}
	return json.Marshal(map[string]any{"columns": rows.Columns, "rows": m, "row_count": rows.Len()})
}

func main() { sdk.RunJSON(run) }
