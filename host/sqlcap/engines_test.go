package sqlcap_test

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/blockhost/blockhost/abi"
	"github.com/blockhost/blockhost/host"
	wasmengine "github.com/blockhost/blockhost/host/engine"
	"github.com/blockhost/blockhost/host/sqlcap"
	"github.com/blockhost/blockhost/internal/testwasm"
)

// blocks holds testdata/sqlblock loaded on each engine, shared by the
// tests below.
var blocks = struct {
	sync.Mutex
	m        map[string]*host.Block
	runtimes []*host.Runtime
}{m: map[string]*host.Block{}}

// closeRuntimes closes the runtimes the tests made; TestMain calls it.
func closeRuntimes() {
	blocks.Lock()
	defer blocks.Unlock()
	for _, rt := range blocks.runtimes {
		rt.Close(context.Background())
	}
}

func sqlBlock(t *testing.T, eng string) *host.Block {
	t.Helper()
	blocks.Lock()
	defer blocks.Unlock()
	if b, ok := blocks.m[eng]; ok {
		return b
	}
	rt, err := host.NewRuntime(context.Background(), host.NewRuntimeConfig().WithEngine(eng))
	if errors.Is(err, wasmengine.ErrUnavailable) {
		t.Skipf("engine %s: %v", eng, err)
	}
	if err != nil {
		t.Fatal(err)
	}
	blocks.runtimes = append(blocks.runtimes, rt)
	b, err := rt.Load(context.Background(), "sqlblock", testwasm.Go(t, "testdata/sqlblock"))
	if err != nil {
		t.Fatal(err)
	}
	blocks.m[eng] = b
	return b
}

// eachWasmEngine runs f on every engine, with every database engine.
func eachWasmEngine(t *testing.T, f func(t *testing.T, b *host.Block, e engine)) {
	for _, eng := range wasmengine.Names() {
		t.Run(eng, func(t *testing.T) {
			b := sqlBlock(t, eng)
			eachEngine(t, func(t *testing.T, e engine) { f(t, b, e) })
		})
	}
}

// stepWith runs the block with the database granted as "app".
func stepWith(ctx context.Context, t *testing.T, b *host.Block, g *sqlcap.Grant, input string) *abi.StepResult {
	t.Helper()
	var grants host.Grants
	if g != nil {
		set, err := sqlcap.NewSet([]sqlcap.Grant{*g})
		if err != nil {
			t.Fatal(err)
		}
		grants.Caps = map[string]any{sqlcap.Name: set}
	}
	return b.Run(ctx, host.Step{Input: []byte(input), Grants: grants})
}

// TestEngines_sameStep: one block, one step, on both engines and both
// databases: the same rows; a write under ro refused by the database; an
// injection attempt stays data; no grant, no database.
func TestEngines_sameStep(t *testing.T) {
	var outputs []string
	eachWasmEngine(t, func(t *testing.T, b *host.Block, e engine) {
		ctx := ctxFor(t)
		g := e.grant(t, sqlcap.ModeReadOnly)
		res := stepWith(ctx, t, b, &g, `{"database":"app","query":"SELECT id, name FROM items WHERE id <= $1 ORDER BY id","params":[2]}`)
		if res.Status != abi.StatusSuccess {
			t.Fatalf("%s: %+v", res.Status, res.Error)
		}
		outputs = append(outputs, string(res.Output))

		res = stepWith(ctx, t, b, &g, `{"database":"app","query":"SELECT id FROM items WHERE name = $1","params":["x' OR '1'='1"]}`)
		if res.Status != abi.StatusSuccess || !json.Valid(res.Output) || string(res.Output) != `{"columns":["id"],"row_count":0,"rows":[]}` {
			t.Errorf("injection: %s %s %+v", res.Status, res.Output, res.Error)
		}

		res = stepWith(ctx, t, b, &g, `{"database":"app","query":"DELETE FROM items","exec":true}`)
		if res.Status != abi.StatusError || res.Error.Code != abi.CodePermissionDenied {
			t.Errorf("write under ro: %s %+v", res.Status, res.Error)
		}
		rw := e.grant(t, sqlcap.ModeReadWrite)
		res = stepWith(ctx, t, b, &rw, `{"database":"app","query":"UPDATE items SET qty = qty WHERE id = $1","params":[1],"exec":true}`)
		if res.Status != abi.StatusSuccess || string(res.Output) != `{"rows_affected":1}` {
			t.Errorf("write under rw: %s %s %+v", res.Status, res.Output, res.Error)
		}

		res = stepWith(ctx, t, b, nil, `{"database":"app","query":"SELECT 1"}`)
		if res.Status != abi.StatusError || res.Error.Code != abi.CodePermissionDenied {
			t.Errorf("no grant: %s %+v", res.Status, res.Error)
		}
		res = stepWith(ctx, t, b, &g, `{"database":"other","query":"SELECT 1"}`)
		if res.Status != abi.StatusError || res.Error.Code != abi.CodePermissionDenied {
			t.Errorf("another database: %s %+v", res.Status, res.Error)
		}
		res = stepWith(ctx, t, b, &g, `{"database":"app","query":"SELEC 1"}`)
		if res.Status != abi.StatusError || res.Error.Code != abi.CodeInvalidInput {
			t.Errorf("syntax: %s %+v", res.Status, res.Error)
		}
	})
	for _, o := range outputs[1:] {
		if o != outputs[0] {
			t.Errorf("outputs differ:\n%s\n%s", outputs[0], o)
		}
	}
}

// TestEngines_stepEndStopsTheStatement: a step's deadline or cancellation
// during a long statement ends the step as timeout or cancelled, on every
// engine, and stops the statement on the server.
func TestEngines_stepEndStopsTheStatement(t *testing.T) {
	eachWasmEngine(t, func(t *testing.T, b *host.Block, e engine) {
		g := e.grant(t, sqlcap.ModeReadOnly)
		in := `{"database":"app","query":"` + e.sleep(45) + `"}`
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		defer cancel()
		start := time.Now()
		res := stepWith(ctx, t, b, &g, in)
		if res.Status != abi.StatusTimeout {
			t.Errorf("deadline: %s %+v", res.Status, res.Error)
		}
		if d := time.Since(start); d > hangCatcher {
			t.Errorf("took %s", d)
		}
		if e.name == "postgres" {
			waitNoQuery(t, "pg_sleep(45)")
		}
		ctx, cancel = context.WithCancel(context.Background())
		go func() {
			if e.name == "postgres" {
				waitQuery(t, "pg_sleep(45)")
			} else {
				time.Sleep(200 * time.Millisecond)
			}
			cancel()
		}()
		res = stepWith(ctx, t, b, &g, in)
		if res.Status != abi.StatusCancelled {
			t.Errorf("cancel: %s %+v", res.Status, res.Error)
		}
		if e.name == "postgres" {
			waitNoQuery(t, "pg_sleep(45)")
		}
	})
}
