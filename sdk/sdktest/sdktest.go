//go:build !wasip1

package sdktest

import (
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/blockhost/blockhost/abi"
	"github.com/blockhost/blockhost/sdk"
	"github.com/blockhost/blockhost/sdk/internal/hostcall"
)

// DefaultOutputLimit is the output cap of a step whose Config sets none,
// the host's default.
const DefaultOutputLimit = 1 << 20

// Config describes the step Call runs. The zero Config is a step with no
// deadline and the default output cap.
type Config struct {
	// Timeout is the step's deadline, counted from the start of Call. Zero
	// means the step has none and the handler's context has no deadline.
	Timeout time.Duration
	// OutputLimit caps the step's output in bytes. Zero means
	// DefaultOutputLimit.
	OutputLimit int
	// Env are the environment variables the step is granted. While the
	// step runs, the process environment is exactly these, so os.Getenv
	// in the handler sees what it would see under the host: nothing that
	// was not granted. Call restores the environment when the step ends.
	Env map[string]string
	// HTTPGrants are the step's HTTP grants. A request that no grant
	// allows is denied with the host's detail, as on the host; none (the
	// default) denies every request.
	HTTPGrants []HTTPGrant
	// HTTP answers, in process, the requests the grants allow (see
	// http.go). Nil means nothing answers: an allowed request fails with
	// network_error.
	HTTP http.Handler
	// FS are the directories the step is granted (see fs.go), read-only
	// unless marked ReadWrite. None means every file operation is denied.
	FS []Dir
	// SQL are the databases the step is granted, by the name the block
	// opens (see sql.go). None means every statement is denied.
	SQL map[string]SQLDatabase
}

// Result is how a step ended, as the host would report it.
type Result struct {
	// Status is the step's status.
	Status abi.Status
	// Output is what the block wrote, nil when it wrote nothing.
	Output []byte
	// Err is the step's error: nil for success, the block's recorded
	// error, or the host's (quota_exceeded for output over the cap,
	// cancelled_by_timeout for a step that ran past its deadline).
	Err *sdk.Error
	// Logs are the records the host accepted, in order.
	Logs []Record
	// Dropped counts the records the host refused for a log cap.
	Dropped int
	// HostCalls counts the calls the block made to the host.
	HostCalls int
	// Panic is the value the handler panicked with, or nil. sdk.Run
	// records the panic as the step's error and panics again; Call
	// recovers it so the test can inspect the result.
	Panic any
}

// Record is one log record the block wrote.
type Record struct {
	Level   sdk.Level
	Message string
	// Fields are the record's key/value pairs in the order written.
	Fields []Field
	// Truncated is set when the message was cut at 4096 bytes; the host
	// marks such a record with truncated=true.
	Truncated bool
}

// Field is a key/value pair of a log record.
type Field struct {
	Key, Value string
}

// Value returns the value of the first field named key.
func (r Record) Value(key string) (string, bool) {
	for _, f := range r.Fields {
		if f.Key == key {
			return f.Value, true
		}
	}
	return "", false
}

// String formats the record as "info greeting name=ana".
func (r Record) String() string {
	var b strings.Builder
	b.WriteString(r.Level.String())
	b.WriteByte(' ')
	b.WriteString(r.Message)
	for _, f := range r.Fields {
		fmt.Fprintf(&b, " %s=%q", f.Key, f.Value)
	}
	if r.Truncated {
		b.WriteString(" truncated=true")
	}
	return b.String()
}

// setEnv makes the process environment exactly env and returns what
// restores the one before.
func setEnv(env map[string]string) (restore func()) {
	saved := os.Environ()
	os.Clearenv()
	for k, v := range env {
		os.Setenv(k, v)
	}
	return func() {
		os.Clearenv()
		for _, kv := range saved {
			// A name may start with '=' (Windows' per-drive directories).
			if i := strings.IndexByte(kv[1:], '='); i >= 0 {
				os.Setenv(kv[:i+1], kv[i+2:])
			}
		}
	}
}

// callMu serializes steps: the sdk's host calls are package functions, so
// one fake host serves the whole process at a time.
var callMu sync.Mutex

// Call runs one step of h with input, under the zero Config.
func Call(t testing.TB, h sdk.Handler, input []byte) Result {
	if t != nil {
		t.Helper()
	}
	return Config{}.Call(t, h, input)
}

// Call runs one step of h with input through sdk.Run, against a fake host
// set up as c says, and returns how the step ended. Each log record is
// also passed to t.Log. t may be nil, as in an Example. A grant of
// c.HTTPGrants the host would refuse fails the test (panics for a nil t).
//
// Steps run one at a time, so tests that call Call may run in parallel
// with each other. While a step runs, the process environment is c.Env
// (see Config.Env): a test that reads the environment must not run in
// parallel with one that calls Call. A handler must not call Call.
func (c Config) Call(t testing.TB, h sdk.Handler, input []byte) (res Result) {
	if t != nil {
		t.Helper()
	}
	rules, err := compileGrants(c.HTTPGrants)
	if err != nil {
		if t != nil {
			t.Fatal(err)
		}
		panic(err)
	}
	callMu.Lock()
	defer callMu.Unlock()

	fh := newFakeHost(c, input)
	fh.http.rules = rules
	restoreEnv := setEnv(c.Env)
	restore := hostcall.Install(fh)
	func() {
		defer restoreEnv()
		defer restore()
		defer func() { res.Panic = recover() }()
		sdk.Run(h)
	}()

	res = fh.result(res.Panic)
	if t != nil {
		for _, r := range res.Logs {
			t.Logf("block log: %s", r)
		}
	}
	return res
}
