package sqlcap

import (
	"bytes"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"modernc.org/sqlite"
)

// Result is the rows a query returned, already in the JSON form blocks
// get. Its JSON encoding is {"columns": [...], "rows": [{...}, ...],
// "row_count": N}; each row is an object whose keys are the column names
// in the order the query gives them.
type Result struct {
	// Columns are the result's column names.
	Columns []string
	// Rows are the rows, each a JSON object.
	Rows []json.RawMessage
	// Bytes is the size of the encoded rows, what max_bytes caps.
	Bytes int
}

// RowCount returns the number of rows.
func (r *Result) RowCount() int { return len(r.Rows) }

// MarshalJSON encodes the result as {"columns", "rows", "row_count"}.
func (r *Result) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.Grow(r.Bytes + 64)
	b.WriteString(`{"columns":`)
	cols, _ := json.Marshal(r.Columns)
	b.Write(cols)
	b.WriteString(`,"rows":[`)
	for i, row := range r.Rows {
		if i > 0 {
			b.WriteByte(',')
		}
		b.Write(row)
	}
	b.WriteString(`],"row_count":`)
	b.WriteString(strconv.Itoa(len(r.Rows)))
	b.WriteByte('}')
	return b.Bytes(), nil
}

// readRows reads rows into a Result: at most maxRows rows and maxBytes
// bytes of encoded rows. One more row, or one more byte, stops the read
// with ErrQuota.
func readRows(rows *sql.Rows, maxRows, maxBytes int) (*Result, error) {
	cols, err := rows.Columns()
	if err != nil {
		return nil, err
	}
	seen := make(map[string]bool, len(cols))
	keys := make([][]byte, len(cols))
	for i, c := range cols {
		if seen[c] {
			return nil, &Error{Kind: ErrInvalid, Reason: fmt.Sprintf("two result columns are named %q; give one an alias (AS)", c)}
		}
		seen[c] = true
		keys[i], _ = json.Marshal(c)
	}
	res := &Result{Columns: cols}
	vals := make([]any, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	var b []byte
	for rows.Next() {
		if len(res.Rows) == maxRows {
			return nil, &Error{Kind: ErrQuota, Reason: fmt.Sprintf("more than max_rows (%d) rows", maxRows)}
		}
		if err := rows.Scan(ptrs...); err != nil {
			return nil, err
		}
		b = b[:0]
		b = append(b, '{')
		for i, v := range vals {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, keys[i]...)
			b = append(b, ':')
			b = appendValue(b, v)
			if res.Bytes+len(b) > maxBytes {
				return nil, &Error{Kind: ErrQuota, Reason: fmt.Sprintf("result over max_bytes (%d bytes)", maxBytes)}
			}
		}
		b = append(b, '}')
		res.Bytes += len(b) + 1
		if res.Bytes > maxBytes {
			return nil, &Error{Kind: ErrQuota, Reason: fmt.Sprintf("result over max_bytes (%d bytes)", maxBytes)}
		}
		res.Rows = append(res.Rows, json.RawMessage(bytes.Clone(b)))
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	return res, nil
}

// appendValue appends one column value as JSON: numbers as numbers (NaN
// and infinities, which JSON lacks, as the strings "NaN", "+Inf", "-Inf"),
// text as strings, bytes as base64 strings, times in RFC 3339.
func appendValue(b []byte, v any) []byte {
	switch x := v.(type) {
	case nil:
		return append(b, "null"...)
	case int64:
		return strconv.AppendInt(b, x, 10)
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return strconv.AppendQuote(b, strconv.FormatFloat(x, 'g', -1, 64))
		}
		return strconv.AppendFloat(b, x, 'g', -1, 64)
	case bool:
		return strconv.AppendBool(b, x)
	case time.Time:
		return append(append(append(b, '"'), x.Format(time.RFC3339Nano)...), '"')
	}
	enc, err := json.Marshal(v)
	if err != nil {
		return strconv.AppendQuote(b, fmt.Sprint(v))
	}
	return append(b, enc...)
}

// DecodeParams reads a JSON array of parameters: null, booleans, numbers
// (integers as int64, others as float64) and strings. Objects and arrays
// are refused: a parameter is one value.
func DecodeParams(data []byte) ([]any, error) {
	data = bytes.TrimSpace(data)
	if len(data) == 0 || string(data) == "null" {
		return nil, nil
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var raw []any
	if err := dec.Decode(&raw); err != nil {
		return nil, &Error{Kind: ErrInvalid, Op: "params", Reason: "parameters are not a JSON array: " + err.Error()}
	}
	if len(raw) > MaxParameters {
		return nil, &Error{Kind: ErrQuota, Op: "params", Reason: fmt.Sprintf("%d parameters, over the cap of %d", len(raw), MaxParameters)}
	}
	out := make([]any, len(raw))
	for i, v := range raw {
		switch x := v.(type) {
		case nil, bool, string:
			out[i] = x
		case json.Number:
			if n, err := strconv.ParseInt(string(x), 10, 64); err == nil {
				out[i] = n
			} else if f, err := strconv.ParseFloat(string(x), 64); err == nil {
				out[i] = f
			} else {
				return nil, &Error{Kind: ErrInvalid, Op: "params", Reason: fmt.Sprintf("parameter %d: number %s is out of range", i+1, x)}
			}
		default:
			return nil, &Error{Kind: ErrInvalid, Op: "params", Reason: fmt.Sprintf("parameter %d is an object or array; parameters are null, booleans, numbers or strings", i+1)}
		}
	}
	return out, nil
}

// reason returns the database's own message, without the driver's
// decoration and without anything from the DSN.
func reason(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		msg := pe.Message
		if pe.Detail != "" {
			msg += ": " + pe.Detail
		}
		return msg
	}
	var se *sqlite.Error
	if errors.As(err, &se) {
		return strings.TrimSpace(se.Error())
	}
	return err.Error()
}
