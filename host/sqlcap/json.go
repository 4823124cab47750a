package sqlcap

import (
	"context"
	"encoding/json"

	"github.com/blockhost/blockhost/abi"
)

// QueryJSON runs Query with parameters given as a JSON array (see
// DecodeParams) and returns the result as JSON, an abi.SQLResult: what
// the sql_query host function and the sql.query block hand a block.
func (d *DB) QueryJSON(ctx context.Context, stmt string, params json.RawMessage) ([]byte, error) {
	p, err := DecodeParams(params)
	if err != nil {
		return nil, d.named("query", err)
	}
	res, err := d.Query(ctx, stmt, p)
	if err != nil {
		return nil, err
	}
	return res.MarshalJSON()
}

// ExecJSON runs Exec with parameters given as a JSON array and returns the
// rows affected.
func (d *DB) ExecJSON(ctx context.Context, stmt string, params json.RawMessage) (int64, error) {
	p, err := DecodeParams(params)
	if err != nil {
		return 0, d.named("exec", err)
	}
	res, err := d.Exec(ctx, stmt, p)
	return res.RowsAffected, err
}

// named puts the op and database into an *Error made without them.
func (d *DB) named(op string, err error) error {
	if e, ok := err.(*Error); ok {
		e.Op, e.Database = op, d.g.Name
	}
	return err
}

// HostError returns how the error reaches a block: the host call's result
// and the detail its *_last_error function gives.
func (e *Error) HostError() (abi.Result, *abi.Error) {
	se := StepError(e)
	return Classify(e).Result, se
}
