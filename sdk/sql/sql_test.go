//go:build !wasip1

package sql

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"testing"
	"time"

	"github.com/blockhost/blockhost/abi"
	"github.com/blockhost/blockhost/sdk"
)

func TestRequest_parameters(t *testing.T) {
	s := "x"
	var nilp *int
	ts := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	req, err := Open("db").request(context.Background(), "query", "SELECT ?", []any{nil, true, 7, uint8(2), 1.5, "s", []byte("b"), ts, &s, nilp})
	if err != nil {
		t.Fatal(err)
	}
	var r abi.SQLRequest
	json.Unmarshal(req, &r)
	if r.Database != "db" || r.Statement != "SELECT ?" || string(r.Params) != `[null,true,7,2,1.5,"s","b","2026-01-02T03:04:05Z","x",null]` {
		t.Errorf("request %s", req)
	}
	for _, bad := range []any{struct{}{}, math.NaN(), uint64(math.MaxUint64), []int{1}, map[string]int{}} {
		if _, err := Open("db").request(context.Background(), "query", "SELECT ?", []any{bad}); !errors.Is(err, sdk.ErrInvalid) {
			t.Errorf("%T %v: got %v, want sdk.ErrInvalid", bad, bad, err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Open("db").Query(ctx, "SELECT 1"); !errors.Is(err, context.Canceled) {
		t.Errorf("done context: %v", err)
	}
}

func TestQuery_outsideAStep(t *testing.T) {
	_, err := Open("db").Query(context.Background(), "SELECT 1")
	if !errors.Is(err, sdk.ErrUnavailable) {
		t.Errorf("got %v, want sdk.ErrUnavailable", err)
	}
	if se, ok := errors.AsType[*sdk.Error](err); !ok || se.Class != abi.ClassRetryable {
		t.Errorf("step error %v", err)
	}
}
