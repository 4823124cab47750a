package sqlcap_test

import (
	"context"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/blockhost/blockhost/abi"
	"github.com/blockhost/blockhost/host"
	wasmengine "github.com/blockhost/blockhost/host/engine"
	"github.com/blockhost/blockhost/host/executor"
	"github.com/blockhost/blockhost/host/sqlcap"
)

// closedPort returns a loopback port nothing listens on: a PostgreSQL
// server that is down, whose connections the kernel refuses.
func closedPort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	return port
}

// TestDependency_wasmBlock: a WebAssembly block's statements count for
// the database they reach, though the request names no dependency. Five
// steps whose statement finds database "down" refusing connections
// (network_error, retryable) open the circuit breaker of sql:down and of
// nothing else; a step on database "up" still runs; a step that retries
// after such a failure is stopped by the open circuit, on every engine.
func TestDependency_wasmBlock(t *testing.T) {
	for _, eng := range wasmengine.Names() {
		t.Run(eng, func(t *testing.T) {
			b := sqlBlock(t, eng)
			set, err := sqlcap.NewSet([]sqlcap.Grant{
				{Name: "down", Driver: sqlcap.DriverPostgres, DSN: sqlcap.Secret(fmt.Sprintf("postgres://app@127.0.0.1:%d/app?sslmode=disable&connect_timeout=5", closedPort(t)))},
				engines[0].grant(t, sqlcap.ModeReadOnly),
			})
			if err != nil {
				t.Fatal(err)
			}
			// engines[0]'s grant is named app; it is the database "up" here.
			grants := host.Grants{Caps: map[string]any{sqlcap.Name: set}}
			e, err := executor.New(executor.NewConfig())
			if err != nil {
				t.Fatal(err)
			}
			defer e.Close(context.Background())
			ctx := ctxFor(t)
			step := func(db string) host.Step {
				return host.Step{Input: []byte(`{"database":"` + db + `","query":"SELECT 1"}`), Grants: grants}
			}
			once := executor.RetryPolicy{MaxAttempts: 1}
			for i := range 5 {
				res := e.Run(ctx, executor.Request{Runner: b, Step: step("down"), Retry: once})
				if res.Status != abi.StatusError || res.Error.Code != abi.CodeNetworkError || res.Error.Class != abi.ClassRetryable {
					t.Fatalf("step %d on down: %s %+v", i+1, res.Status, res.Error)
				}
			}
			if res := e.Run(ctx, executor.Request{Runner: b, Step: step("app"), Retry: once}); res.Status != abi.StatusSuccess {
				t.Fatalf("step on app: %s %+v", res.Status, res.Error)
			}
			states := e.BreakerStates()
			if states[sqlcap.Dependency("down")] != "open" {
				t.Fatalf("breakers %v: sql:down is not open after 5 refused connections", states)
			}
			if s := states[sqlcap.Dependency("app")]; s == "open" {
				t.Errorf("breakers %v: sql:app is open too", states)
			}
			res := e.Run(ctx, executor.Request{Runner: b, Step: step("down"),
				Retry: executor.RetryPolicy{MaxAttempts: 3, Initial: time.Millisecond, MaxInterval: time.Millisecond}})
			if res.Status != abi.StatusError || res.Attempts != 1 || res.Error.Code != abi.CodeResourceUnavailable || res.Error.RetryAfterMS == nil {
				t.Errorf("a retry on down went through its open circuit: attempts %d, %s %+v", res.Attempts, res.Status, res.Error)
			}
		})
	}
}
