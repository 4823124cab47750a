package host

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"math"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"
	"unicode/utf8"

	"github.com/hashicorp/go-hclog"

	"github.com/blockhost/blockhost/abi"
	"github.com/blockhost/blockhost/host/engine"
)

// fakeMemory is linear memory backed by a slice. Its bounds rule is the
// engines': a range is inside when offset+count, computed without
// overflow, is at most the memory's size.
type fakeMemory struct{ buf []byte }

var _ engine.Memory = (*fakeMemory)(nil)

// newFakeMemory returns size bytes of memory filled with a non-zero
// pattern, so that a stray write of zeros shows.
func newFakeMemory(size int) *fakeMemory {
	m := &fakeMemory{buf: make([]byte, size)}
	for i := range m.buf {
		m.buf[i] = byte(i*7 + 3)
	}
	return m
}

func (m *fakeMemory) inside(off uint32, n uint64) bool {
	return uint64(off)+n <= uint64(len(m.buf))
}

func (m *fakeMemory) Read(off, n uint32) ([]byte, bool) {
	if !m.inside(off, uint64(n)) {
		return nil, false
	}
	return m.buf[off : off+n : off+n], true
}

func (m *fakeMemory) Write(off uint32, v []byte) bool {
	if !m.inside(off, uint64(len(v))) {
		return false
	}
	copy(m.buf[off:], v)
	return true
}

func (m *fakeMemory) WriteUint32Le(off, v uint32) bool {
	if !m.inside(off, 4) {
		return false
	}
	binary.LittleEndian.PutUint32(m.buf[off:], v)
	return true
}

func (m *fakeMemory) WriteUint64Le(off uint32, v uint64) bool {
	if !m.inside(off, 8) {
		return false
	}
	binary.LittleEndian.PutUint64(m.buf[off:], v)
	return true
}

func (m *fakeMemory) put(off uint32, s string) { copy(m.buf[off:], s) }
func (m *fakeMemory) u32(off uint32) uint32    { return binary.LittleEndian.Uint32(m.buf[off:]) }
func (m *fakeMemory) u64(off uint32) uint64    { return binary.LittleEndian.Uint64(m.buf[off:]) }

// testStep is one step's state, outside any engine: host functions are
// called directly with its context and memory.
type testStep struct {
	st   *stepState
	ctx  context.Context
	mem  *fakeMemory
	logs *bytes.Buffer
}

const (
	testStepID    = "step-0001"
	testBlockName = "testblock"
)

// newTestStep sets up a step the way Block.Run does, with a JSON logger
// writing to a buffer, 64 KiB of memory and a live context with no
// deadline.
func newTestStep(t testing.TB, input string, lim Limits) *testStep {
	t.Helper()
	logs := &bytes.Buffer{}
	logger := hclog.New(&hclog.LoggerOptions{Output: logs, JSONFormat: true, Level: hclog.Trace})
	rt := &Runtime{logger: logger, limits: DefaultLimits}
	lim = lim.Or(DefaultLimits)
	st := &stepState{block: &Block{rt: rt, name: testBlockName}, id: testStepID, input: []byte(input), limits: lim}
	st.output.limit = lim.Output
	st.logBudget = lim.Log
	st.tokens = logBurst
	st.lastRefill = time.Now()
	return &testStep{
		st:   st,
		ctx:  context.WithValue(context.Background(), stepKey{}, st),
		mem:  newFakeMemory(64 << 10),
		logs: logs,
	}
}

// withContext makes ctx the step's context.
func (ts *testStep) withContext(ctx context.Context) *testStep {
	ts.ctx = context.WithValue(ctx, stepKey{}, ts.st)
	return ts
}

// detail returns what the *_last_error function name answers, or nil
// when it answers not_found. It uses the top 16 KiB of the step's memory.
func (ts *testStep) detail(t testing.TB, name string) *abi.Error {
	t.Helper()
	buf, n := uint32(len(ts.mem.buf)-16<<10), uint32(len(ts.mem.buf)-4)
	switch r := callHost(t, ts.ctx, ts.mem, name, uint64(buf), 12<<10, uint64(n)); r {
	case abi.ResultNotFound:
		return nil
	case abi.ResultOK:
	default:
		t.Fatalf("%s = %s", name, r)
	}
	var e abi.Error
	if err := json.Unmarshal(ts.mem.buf[buf:buf+ts.mem.u32(n)], &e); err != nil {
		t.Fatal(err)
	}
	return &e
}

// hostFuncs maps names to the host module's functions. It is built on
// first use, after every capability's init has registered its functions.
var hostFuncs = sync.OnceValue(func() map[string]engine.HostFunction {
	m := map[string]engine.HostFunction{}
	for _, f := range hostModule().Functions {
		m[f.Name] = f
	}
	return m
})

// callHost calls the host function name with args on a stack sized as an
// engine sizes it, and returns its result.
func callHost(t testing.TB, ctx context.Context, mem engine.Memory, name string, args ...uint64) abi.Result {
	t.Helper()
	f, ok := hostFuncs()[name]
	if !ok {
		t.Fatalf("no host function %q", name)
	}
	if len(args) != len(f.Signature.Params) {
		t.Fatalf("%s takes %d arguments, got %d", name, len(f.Signature.Params), len(args))
	}
	stack := make([]uint64, max(len(f.Signature.Params), len(f.Signature.Results)))
	copy(stack, args)
	f.Func(ctx, mem, stack)
	return abi.Result(stack[0])
}

func (ts *testStep) call(t testing.TB, name string, args ...uint64) abi.Result {
	t.Helper()
	return callHost(t, ts.ctx, ts.mem, name, args...)
}

// records parses the JSON log records written so far.
func (ts *testStep) records(t testing.TB) []map[string]any {
	t.Helper()
	var out []map[string]any
	for line := range strings.SplitSeq(strings.TrimSpace(ts.logs.String()), "\n") {
		if line == "" {
			continue
		}
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("log line is not JSON: %v: %q", err, line)
		}
		out = append(out, rec)
	}
	return out
}

// checkRecordIdentity asserts that a record carries the fields the host
// adds to every record.
func checkRecordIdentity(t testing.TB, rec map[string]any) {
	t.Helper()
	if rec["step_id"] != testStepID || rec["block"] != testBlockName {
		t.Errorf("record %v: step_id %v, block %v; want %q, %q", rec, rec["step_id"], rec["block"], testStepID, testBlockName)
	}
}

// state is what a host call can change outside memory.
type state struct {
	output    string
	outputHit bool
	guestErr  *abi.Error
	logBytes  int
	logBudget uint64
	dropped   uint64
}

func (ts *testStep) state() state {
	s := state{
		output:    string(ts.st.output.buf),
		outputHit: ts.st.output.hit,
		logBytes:  ts.logs.Len(),
		logBudget: ts.st.logBudget,
		dropped:   ts.st.dropped,
	}
	if ts.st.guestErr != nil {
		e := *ts.st.guestErr
		s.guestErr = &e
	}
	return s
}

func sameState(a, b state) bool {
	if (a.guestErr == nil) != (b.guestErr == nil) {
		return false
	}
	if a.guestErr != nil && (a.guestErr.Code != b.guestErr.Code || a.guestErr.Class != b.guestErr.Class || a.guestErr.Message != b.guestErr.Message) {
		return false
	}
	a.guestErr, b.guestErr = nil, nil
	return a == b
}

// checkNoEffect asserts that neither memory nor the step changed since
// the snapshots were taken.
func (ts *testStep) checkNoEffect(t testing.TB, memBefore []byte, before state) {
	t.Helper()
	if !bytes.Equal(ts.mem.buf, memBefore) {
		t.Errorf("memory changed at %v", diffRanges(memBefore, ts.mem.buf))
	}
	if after := ts.state(); !sameState(before, after) {
		t.Errorf("step changed: before %+v, after %+v; log:\n%s", before, after, ts.logs.String())
	}
}

// diffRanges lists the half-open byte ranges where a and b differ.
func diffRanges(a, b []byte) [][2]int {
	var out [][2]int
	for i := 0; i < len(a); i++ {
		if a[i] == b[i] {
			continue
		}
		j := i
		for j < len(a) && a[j] != b[j] {
			j++
		}
		out = append(out, [2]int{i, j})
		i = j
	}
	return out
}

// checkChangedOnly asserts that memory differs from before only inside
// the given half-open ranges.
func checkChangedOnly(t testing.TB, before, after []byte, allowed ...[2]int) {
	t.Helper()
	for i := range before {
		if before[i] == after[i] {
			continue
		}
		ok := false
		for _, r := range allowed {
			ok = ok || (i >= r[0] && i < r[1])
		}
		if !ok {
			t.Errorf("memory changed at %d, outside %v", i, allowed)
			return
		}
	}
}

// coreFuncs are the host functions of docs/abi.md §4, which every host
// provides in the host module; capabilities add theirs elsewhere.
var coreFuncs = []string{
	abi.FuncInputLen, abi.FuncInputRead, abi.FuncOutputWrite, abi.FuncErrorSet,
	abi.FuncLog, abi.FuncDeadline, abi.FuncCheck,
}

func TestHostModule_matchesABI(t *testing.T) {
	hm := hostModule()
	if hm.Name != abi.ImportModule {
		t.Errorf("host module %q, want %q", hm.Name, abi.ImportModule)
	}
	have := map[string]bool{}
	for _, f := range hm.Functions {
		have[f.Name] = true
		sig, ok := abi.LookupFunction(f.Name)
		if !ok {
			t.Errorf("host function %q is not in ABI v1", f.Name)
			continue
		}
		if !bytes.Equal(abiTypesBytes(sig.Params), abiTypesBytes(f.Signature.Params)) ||
			!bytes.Equal(abiTypesBytes(sig.Results), abiTypesBytes(f.Signature.Results)) {
			t.Errorf("%s: signature %v, ABI v1 defines %v", f.Name, f.Signature, sig)
		}
		if f.Func == nil {
			t.Errorf("%s has no implementation", f.Name)
		}
	}
	for _, name := range coreFuncs {
		if !have[name] {
			t.Errorf("host module lacks %q", name)
		}
	}
}

func abiTypesBytes(ts []abi.ValueType) []byte {
	b := make([]byte, len(ts))
	for i, t := range ts {
		b[i] = byte(t)
	}
	return b
}

func TestHostCalls_valid(t *testing.T) {
	const input = "hello, world"
	tests := []struct {
		name   string
		fn     string
		setup  func(m *fakeMemory)
		args   []uint64
		effect func(t *testing.T, ts *testStep, before []byte)
	}{
		{
			name: "input_len", fn: abi.FuncInputLen, args: []uint64{100},
			effect: func(t *testing.T, ts *testStep, before []byte) {
				if got := ts.mem.u32(100); got != uint32(len(input)) {
					t.Errorf("length %d, want %d", got, len(input))
				}
				checkChangedOnly(t, before, ts.mem.buf, [2]int{100, 104})
			},
		},
		{
			name: "input_read whole input", fn: abi.FuncInputRead, args: []uint64{200, 64, 100},
			effect: func(t *testing.T, ts *testStep, before []byte) {
				if got := string(ts.mem.buf[200 : 200+len(input)]); got != input {
					t.Errorf("buffer %q, want %q", got, input)
				}
				if got := ts.mem.u32(100); got != uint32(len(input)) {
					t.Errorf("count %d, want %d", got, len(input))
				}
				checkChangedOnly(t, before, ts.mem.buf, [2]int{200, 200 + len(input)}, [2]int{100, 104})
			},
		},
		{
			name: "input_read short buffer", fn: abi.FuncInputRead, args: []uint64{200, 5, 100},
			effect: func(t *testing.T, ts *testStep, before []byte) {
				if got := string(ts.mem.buf[200:205]); got != "hello" {
					t.Errorf("buffer %q, want %q", got, "hello")
				}
				if got := ts.mem.u32(100); got != 5 {
					t.Errorf("count %d, want 5", got)
				}
				checkChangedOnly(t, before, ts.mem.buf, [2]int{200, 205}, [2]int{100, 104})
			},
		},
		{
			name: "input_read twice gives the same bytes", fn: abi.FuncInputRead, args: []uint64{300, 64, 100},
			effect: func(t *testing.T, ts *testStep, before []byte) {
				if r := ts.call(t, abi.FuncInputRead, 400, 64, 104); r != abi.ResultOK {
					t.Fatalf("second read: %s", r)
				}
				if a, b := ts.mem.buf[300:300+len(input)], ts.mem.buf[400:400+len(input)]; !bytes.Equal(a, b) || string(a) != input {
					t.Errorf("reads %q and %q, want %q twice", a, b, input)
				}
			},
		},
		{
			name: "input_read empty buffer at the end of memory", fn: abi.FuncInputRead, args: []uint64{64 << 10, 0, 100},
			effect: func(t *testing.T, ts *testStep, before []byte) {
				if got := ts.mem.u32(100); got != 0 {
					t.Errorf("count %d, want 0", got)
				}
				checkChangedOnly(t, before, ts.mem.buf, [2]int{100, 104})
			},
		},
		{
			name: "output_write", fn: abi.FuncOutputWrite, args: []uint64{300, 7},
			setup: func(m *fakeMemory) { m.put(300, `{"a":1}`) },
			effect: func(t *testing.T, ts *testStep, before []byte) {
				if got := string(ts.st.output.buf); got != `{"a":1}` {
					t.Errorf("output %q", got)
				}
				if r := ts.call(t, abi.FuncOutputWrite, 300, 4); r != abi.ResultOK {
					t.Fatalf("second write: %s", r)
				}
				if got := string(ts.st.output.buf); got != `{"a":1}{"a"` {
					t.Errorf("output after a second write %q: writes must append", got)
				}
				checkChangedOnly(t, before, ts.mem.buf)
			},
		},
		{
			name: "output_write nothing at the end of memory", fn: abi.FuncOutputWrite, args: []uint64{64 << 10, 0},
			effect: func(t *testing.T, ts *testStep, before []byte) {
				if len(ts.st.output.buf) != 0 || ts.st.output.hit {
					t.Errorf("output %q, hit %v", ts.st.output.buf, ts.st.output.hit)
				}
			},
		},
		{
			name: "error_set", fn: abi.FuncErrorSet, args: []uint64{2002, 1, 400, 15},
			setup: func(m *fakeMemory) { m.put(400, "backend is down") },
			effect: func(t *testing.T, ts *testStep, before []byte) {
				want := abi.NewError(abi.CodeResourceUnavailable, abi.ClassRetryable, "backend is down")
				if e := ts.st.guestErr; e == nil || *e != *want {
					t.Errorf("error %+v, want %+v", e, want)
				}
				ts.mem.put(400, "second")
				if r := ts.call(t, abi.FuncErrorSet, 1003, 0, 400, 6); r != abi.ResultOK {
					t.Fatalf("second error_set: %s", r)
				}
				want = abi.NewError(abi.CodeInvalidFormat, abi.ClassPermanent, "second")
				if e := ts.st.guestErr; e == nil || *e != *want {
					t.Errorf("after a second call error %+v, want it replaced by %+v", e, want)
				}
			},
		},
		{
			name: "log", fn: abi.FuncLog, args: []uint64{3, 500, 8, 600, 13},
			setup: func(m *fakeMemory) { m.put(500, "greeting"); m.put(600, "user\x00ana\x00n\x003\x00") },
			effect: func(t *testing.T, ts *testStep, before []byte) {
				recs := ts.records(t)
				if len(recs) != 1 {
					t.Fatalf("%d records, want 1", len(recs))
				}
				rec := recs[0]
				checkRecordIdentity(t, rec)
				if rec["@level"] != "info" || rec["@message"] != "greeting" || rec["user"] != "ana" || rec["n"] != "3" {
					t.Errorf("record %v", rec)
				}
				if _, ok := rec["truncated"]; ok {
					t.Errorf("short message marked truncated: %v", rec)
				}
				checkChangedOnly(t, before, ts.mem.buf)
			},
		},
		{
			name: "log without pairs", fn: abi.FuncLog, args: []uint64{5, 500, 8, 0, 0},
			setup: func(m *fakeMemory) { m.put(500, "greeting") },
			effect: func(t *testing.T, ts *testStep, before []byte) {
				recs := ts.records(t)
				if len(recs) != 1 || recs[0]["@level"] != "error" || recs[0]["@message"] != "greeting" {
					t.Fatalf("records %v, want one error record", recs)
				}
				checkRecordIdentity(t, recs[0])
			},
		},
		{
			name: "log with an empty key and value", fn: abi.FuncLog, args: []uint64{3, 500, 8, 600, 2},
			setup: func(m *fakeMemory) { m.put(500, "greeting"); m.put(600, "\x00\x00") },
			effect: func(t *testing.T, ts *testStep, before []byte) {
				if recs := ts.records(t); len(recs) != 1 {
					t.Fatalf("%d records, want 1", len(recs))
				}
			},
		},
		{
			name: "deadline without one", fn: abi.FuncDeadline, args: []uint64{16},
			effect: func(t *testing.T, ts *testStep, before []byte) {
				if got := int64(ts.mem.u64(16)); got != -1 {
					t.Errorf("deadline %d, want -1", got)
				}
				checkChangedOnly(t, before, ts.mem.buf, [2]int{16, 24})
			},
		},
		{
			name: "check", fn: abi.FuncCheck,
			effect: func(t *testing.T, ts *testStep, before []byte) {
				checkChangedOnly(t, before, ts.mem.buf)
				if ts.st.sawEnd {
					t.Error("a live step marked as seen ended")
				}
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ts := newTestStep(t, input, Limits{})
			if tc.setup != nil {
				tc.setup(ts.mem)
			}
			before := bytes.Clone(ts.mem.buf)
			if r := ts.call(t, tc.fn, tc.args...); r != abi.ResultOK {
				t.Fatalf("%s(%v) = %s, want ok", tc.fn, tc.args, r)
			}
			tc.effect(t, ts, before)
			if ts.st.hostCalls == 0 {
				t.Error("host call not counted")
			}
		})
	}
}

func TestHostCalls_countsEveryCall(t *testing.T) {
	ts := newTestStep(t, "x", Limits{})
	ts.call(t, abi.FuncCheck)
	ts.call(t, abi.FuncInputLen, math.MaxUint32) // invalid, still counted
	ts.call(t, abi.FuncLog, 99, 0, 0, 0, 0)      // invalid, still counted
	if ts.st.hostCalls != 3 {
		t.Errorf("host calls %d, want 3", ts.st.hostCalls)
	}
}

func TestDeadline_nanosecondsLeft(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithTimeoutCause(context.Background(), 3*time.Second, ErrStepTimeout)
		defer cancel()
		ts := newTestStep(t, "", Limits{}).withContext(ctx)
		if r := ts.call(t, abi.FuncDeadline, 8); r != abi.ResultOK {
			t.Fatalf("deadline: %s", r)
		}
		if got := int64(ts.mem.u64(8)); got != int64(3*time.Second) {
			t.Errorf("left %d ns, want %d", got, int64(3*time.Second))
		}
		time.Sleep(time.Second)
		if r := ts.call(t, abi.FuncDeadline, 8); r != abi.ResultOK {
			t.Fatalf("deadline: %s", r)
		}
		if got := int64(ts.mem.u64(8)); got != int64(2*time.Second) {
			t.Errorf("after 1s, left %d ns, want %d", got, int64(2*time.Second))
		}
	})
}

func TestHostCalls_outOfBounds(t *testing.T) {
	const memSize = 1024
	const input = "hello, world" // 12 bytes
	tests := []struct {
		name string
		fn   string
		args []uint64
	}{
		{"input_len partly past the end", abi.FuncInputLen, []uint64{memSize - 3}},
		{"input_len at the end", abi.FuncInputLen, []uint64{memSize}},
		{"input_len wrapping", abi.FuncInputLen, []uint64{math.MaxUint32 - 1}},
		{"input_read buffer past the end", abi.FuncInputRead, []uint64{memSize - 8, 12, 0}},
		{"input_read buffer wrapping", abi.FuncInputRead, []uint64{math.MaxUint32, 12, 0}},
		{"input_read count past the end", abi.FuncInputRead, []uint64{0, 12, memSize - 2}},
		{"input_read count wrapping", abi.FuncInputRead, []uint64{0, 12, math.MaxUint32 - 2}},
		{"output_write past the end", abi.FuncOutputWrite, []uint64{memSize - 10, 11}},
		{"output_write wrapping", abi.FuncOutputWrite, []uint64{math.MaxUint32, 2}},
		{"output_write huge length", abi.FuncOutputWrite, []uint64{1, math.MaxUint32}},
		{"output_write empty past the end", abi.FuncOutputWrite, []uint64{memSize + 1, 0}},
		{"error_set message past the end", abi.FuncErrorSet, []uint64{2001, 0, memSize - 4, 5}},
		{"error_set message wrapping", abi.FuncErrorSet, []uint64{2001, 0, math.MaxUint32 - 15, 32}},
		{"log message past the end", abi.FuncLog, []uint64{3, memSize - 4, 5, 0, 0}},
		{"log message wrapping", abi.FuncLog, []uint64{3, math.MaxUint32, 2, 0, 0}},
		{"log pairs past the end", abi.FuncLog, []uint64{3, 0, 4, memSize - 2, 4}},
		{"log pairs wrapping", abi.FuncLog, []uint64{3, 0, 4, math.MaxUint32 - 1, 4}},
		{"deadline partly past the end", abi.FuncDeadline, []uint64{memSize - 7}},
		{"deadline wrapping", abi.FuncDeadline, []uint64{math.MaxUint32 - 3}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ts := newTestStep(t, input, Limits{})
			ts.mem = newFakeMemory(memSize)
			ts.mem.put(memSize-4, "k\x00v\x00")
			memBefore, before := bytes.Clone(ts.mem.buf), ts.state()
			if r := ts.call(t, tc.fn, tc.args...); r != abi.ResultInvalid {
				t.Errorf("%s(%v) = %s, want invalid", tc.fn, tc.args, r)
			}
			ts.checkNoEffect(t, memBefore, before)
		})
	}
}

// validCalls are calls that succeed on a live step whose memory was set up
// by setupValidCalls: every host function once.
var validCalls = []struct {
	fn   string
	args []uint64
}{
	{abi.FuncInputLen, []uint64{8}},
	{abi.FuncInputRead, []uint64{256, 64, 8}},
	{abi.FuncOutputWrite, []uint64{1024, 7}},
	{abi.FuncErrorSet, []uint64{2002, 1, 2048, 15}},
	{abi.FuncLog, []uint64{3, 3072, 8, 3200, 9}},
	{abi.FuncDeadline, []uint64{16}},
	{abi.FuncCheck, nil},
}

func setupValidCalls(m *fakeMemory) {
	m.put(1024, `{"a":1}`)
	m.put(2048, "backend is down")
	m.put(3072, "greeting")
	m.put(3200, "user\x00ana\x00")
}

func TestHostCalls_nilMemory(t *testing.T) {
	for _, c := range validCalls {
		if c.fn == abi.FuncCheck {
			continue // check reads no memory
		}
		t.Run(c.fn, func(t *testing.T) {
			ts := newTestStep(t, "input", Limits{})
			before := ts.state()
			if r := callHost(t, ts.ctx, nil, c.fn, c.args...); r != abi.ResultInvalid {
				t.Errorf("%s without memory = %s, want invalid", c.fn, r)
			}
			if after := ts.state(); !sameState(before, after) {
				t.Errorf("step changed: %+v -> %+v", before, after)
			}
		})
	}
}

func TestHostCalls_noStepInContext(t *testing.T) {
	for _, c := range validCalls {
		t.Run(c.fn, func(t *testing.T) {
			mem := newFakeMemory(64 << 10)
			setupValidCalls(mem)
			before := bytes.Clone(mem.buf)
			if r := callHost(t, context.Background(), mem, c.fn, c.args...); r != abi.ResultInvalid {
				t.Errorf("%s outside a step = %s, want invalid", c.fn, r)
			}
			if !bytes.Equal(before, mem.buf) {
				t.Error("memory changed")
			}
		})
	}
}

// TestHostCalls_afterStepEnd checks the functions' own side of docs/abi.md
// §4: once the step is over, every host function answers timeout or
// cancelled, by the recorded cause, and does nothing else. The engines never
// hand that answer to the guest (TestHostModule_stopsWhenDone); it is what
// a function does if it is reached at all.
func TestHostCalls_afterStepEnd(t *testing.T) {
	past := func() time.Time { return time.Now().Add(-time.Second) }
	ends := []struct {
		name string
		ctx  func() context.Context
		want abi.Result
	}{
		{"step timeout", func() context.Context {
			ctx, cancel := context.WithDeadlineCause(context.Background(), past(), ErrStepTimeout)
			t.Cleanup(cancel)
			return ctx
		}, abi.ResultTimeout},
		{"caller's deadline", func() context.Context {
			ctx, cancel := context.WithDeadline(context.Background(), past())
			t.Cleanup(cancel)
			return ctx
		}, abi.ResultTimeout},
		{"cancelled with ErrCancelled", func() context.Context {
			ctx, cancel := context.WithCancelCause(context.Background())
			cancel(ErrCancelled)
			return ctx
		}, abi.ResultCancelled},
		{"cancelled without a cause", func() context.Context {
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			return ctx
		}, abi.ResultCancelled},
		{"cancelled with a cause of the caller's", func() context.Context {
			ctx, cancel := context.WithCancelCause(context.Background())
			cancel(errors.New("operator pressed stop"))
			return ctx
		}, abi.ResultCancelled},
		{"cancelled, then the deadline passed", func() context.Context {
			parent, cancel := context.WithCancelCause(context.Background())
			ctx, stop := context.WithTimeoutCause(parent, time.Hour, ErrStepTimeout)
			t.Cleanup(stop)
			cancel(ErrCancelled)
			return ctx
		}, abi.ResultCancelled},
		{"deadline passed, then cancelled", func() context.Context {
			parent, cancel := context.WithCancelCause(context.Background())
			ctx, stop := context.WithDeadlineCause(parent, past(), ErrStepTimeout)
			t.Cleanup(stop)
			cancel(ErrCancelled)
			return ctx
		}, abi.ResultTimeout},
	}
	for _, end := range ends {
		for _, c := range validCalls {
			t.Run(end.name+"/"+c.fn, func(t *testing.T) {
				// The same call on a live step succeeds: the arguments are
				// valid, so only the step's end can refuse them.
				live := newTestStep(t, "input", Limits{})
				setupValidCalls(live.mem)
				if r := live.call(t, c.fn, c.args...); r != abi.ResultOK {
					t.Fatalf("on a live step %s(%v) = %s, want ok", c.fn, c.args, r)
				}

				ts := newTestStep(t, "input", Limits{}).withContext(end.ctx())
				setupValidCalls(ts.mem)
				memBefore, before := bytes.Clone(ts.mem.buf), ts.state()
				if r := ts.call(t, c.fn, c.args...); r != end.want {
					t.Errorf("%s(%v) after the step ended = %s, want %s", c.fn, c.args, r, end.want)
				}
				ts.checkNoEffect(t, memBefore, before)
				if ts.st.guestErr != nil {
					t.Errorf("error recorded after the end: %+v", ts.st.guestErr)
				}
				if !ts.st.sawEnd {
					t.Error("step not marked as seen ended")
				}
				if ts.st.hostCalls != 1 {
					t.Errorf("host calls %d, want 1", ts.st.hostCalls)
				}
			})
		}
	}
}

// TestHostCalls_afterStepEndAll extends the guarantee to every function
// of the host module, capabilities' included: whatever the arguments, a
// call after the step's end answers timeout or cancelled and does nothing.
func TestHostCalls_afterStepEndAll(t *testing.T) {
	ends := []struct {
		name  string
		cause error
		want  abi.Result
	}{
		{"timeout", ErrStepTimeout, abi.ResultTimeout},
		{"cancelled", ErrCancelled, abi.ResultCancelled},
	}
	for _, f := range hostModule().Functions {
		for _, end := range ends {
			t.Run(f.Name+"/"+end.name, func(t *testing.T) {
				ctx, cancel := context.WithCancelCause(context.Background())
				cancel(end.cause)
				ts := newTestStep(t, "input", Limits{}).withContext(ctx)
				setupValidCalls(ts.mem)
				memBefore, before := bytes.Clone(ts.mem.buf), ts.state()
				// Small pointers and lengths, inside memory.
				args := make([]uint64, len(f.Signature.Params))
				for i := range args {
					args[i] = uint64(16 * (i + 1))
				}
				if r := ts.call(t, f.Name, args...); r != end.want {
					t.Errorf("%s(%v) after the step ended = %s, want %s", f.Name, args, r, end.want)
				}
				ts.checkNoEffect(t, memBefore, before)
				if !ts.st.sawEnd || ts.st.hostCalls != 1 {
					t.Errorf("sawEnd %v, host calls %d; want true, 1", ts.st.sawEnd, ts.st.hostCalls)
				}
			})
		}
	}
}

// TestHostModule_stopsWhenDone checks the other side of docs/abi.md §4:
// every function of the host module, capabilities' included, asks the
// engine to end the run rather than return to a guest whose step is over.
func TestHostModule_stopsWhenDone(t *testing.T) {
	for _, f := range hostModule().Functions {
		if !f.StopWhenDone {
			t.Errorf("%s returns to the guest after its step is over", f.Name)
		}
	}
}

func TestErrorSet_codes(t *testing.T) {
	// The codes of docs/abi.md §6 below 5000; 5001 and 5002 are the host's.
	blockCodes := map[uint32]bool{
		1001: true, 1002: true, 1003: true, 2001: true, 2002: true, 2003: true, 2004: true,
		3001: true, 3002: true, 3003: true, 4001: true, 4002: true,
	}
	ts := newTestStep(t, "", Limits{})
	ts.mem.put(0, "m")
	for code := uint32(0); code <= 6000; code++ {
		for _, class := range []uint32{0, 1} {
			ts.st.guestErr = nil
			r := ts.call(t, abi.FuncErrorSet, uint64(code), uint64(class), 0, 1)
			switch {
			case blockCodes[code] && r != abi.ResultOK:
				t.Errorf("error_set(%d, %d) = %s, want ok", code, class, r)
			case blockCodes[code] && (ts.st.guestErr == nil || ts.st.guestErr.Code != abi.Code(code) ||
				ts.st.guestErr.Class != abi.Class(class) || ts.st.guestErr.Name != abi.Code(code).Name()):
				t.Errorf("error_set(%d, %d) recorded %+v", code, class, ts.st.guestErr)
			case !blockCodes[code] && (r != abi.ResultInvalid || ts.st.guestErr != nil):
				t.Errorf("error_set(%d, %d) = %s, recorded %+v; want invalid, nothing", code, class, r, ts.st.guestErr)
			}
		}
	}
}

func TestErrorSet_invalid(t *testing.T) {
	tests := []struct {
		name        string
		code, class uint64
	}{
		{"zero code", 0, 0},
		{"unknown code", 1004, 0},
		{"cancelled_by_user is the host's", 5001, 0},
		{"cancelled_by_timeout is the host's", 5002, 0},
		{"largest code", math.MaxUint32, 0},
		{"class 2", 2001, 2},
		{"largest class", 2001, math.MaxUint32},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ts := newTestStep(t, "", Limits{})
			ts.mem.put(0, "first")
			ts.mem.put(16, "second")
			if r := ts.call(t, abi.FuncErrorSet, 1001, 0, 0, 5); r != abi.ResultOK {
				t.Fatalf("first error_set: %s", r)
			}
			memBefore, before := bytes.Clone(ts.mem.buf), ts.state()
			if r := ts.call(t, abi.FuncErrorSet, tc.code, tc.class, 16, 6); r != abi.ResultInvalid {
				t.Errorf("error_set(%d, %d) = %s, want invalid", tc.code, tc.class, r)
			}
			// The earlier error stands.
			ts.checkNoEffect(t, memBefore, before)
		})
	}
}

func TestErrorSet_message(t *testing.T) {
	tests := []struct {
		name, msg, want string
	}{
		{"plain", "it broke", "it broke"},
		{"empty", "", ""},
		{"cut at 4096 bytes", strings.Repeat("x", 5000), strings.Repeat("x", maxMessage)},
		{"exactly 4096 bytes", strings.Repeat("y", maxMessage), strings.Repeat("y", maxMessage)},
		{"invalid UTF-8 replaced", "bad \xff\xfe byte", "bad \uFFFD byte"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ts := newTestStep(t, "", Limits{})
			ts.mem.put(0, tc.msg)
			if r := ts.call(t, abi.FuncErrorSet, 4001, 0, 0, uint64(len(tc.msg))); r != abi.ResultOK {
				t.Fatalf("error_set: %s", r)
			}
			if got := ts.st.guestErr.Message; got != tc.want {
				t.Errorf("message %q (%d bytes), want %q (%d bytes)", trim(got), len(got), trim(tc.want), len(tc.want))
			}
			if !utf8.ValidString(ts.st.guestErr.Message) {
				t.Error("message is not valid UTF-8")
			}
		})
	}
}

func trim(s string) string {
	if len(s) > 40 {
		return s[:40] + "…"
	}
	return s
}

func TestLog_levels(t *testing.T) {
	want := map[uint64]string{1: "trace", 2: "debug", 3: "info", 4: "warn", 5: "error"}
	for level, name := range want {
		t.Run(name, func(t *testing.T) {
			ts := newTestStep(t, "", Limits{})
			ts.mem.put(0, "m")
			if r := ts.call(t, abi.FuncLog, level, 0, 1, 0, 0); r != abi.ResultOK {
				t.Fatalf("log(%d) = %s", level, r)
			}
			recs := ts.records(t)
			if len(recs) != 1 || recs[0]["@level"] != name {
				t.Fatalf("records %v, want one at %s", recs, name)
			}
			checkRecordIdentity(t, recs[0])
		})
	}
}

func TestLog_invalid(t *testing.T) {
	tests := []struct {
		name  string
		level uint64
		kv    string
	}{
		{"level 0", 0, ""},
		{"level 6", 6, ""},
		{"largest level", math.MaxUint32, ""},
		{"one string", 3, "k\x00"},
		{"one empty string", 3, "\x00"},
		{"three strings", 3, "k\x00v\x00x\x00"},
		{"no final NUL", 3, "k\x00v"},
		{"no NUL at all", 3, "kv"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ts := newTestStep(t, "", Limits{})
			ts.mem.put(0, "message")
			ts.mem.put(100, tc.kv)
			memBefore, before := bytes.Clone(ts.mem.buf), ts.state()
			if r := ts.call(t, abi.FuncLog, tc.level, 0, 7, 100, uint64(len(tc.kv))); r != abi.ResultInvalid {
				t.Errorf("log = %s, want invalid", r)
			}
			ts.checkNoEffect(t, memBefore, before)
		})
	}
}

// TestLog_reservedKeys checks that a block cannot set the fields the host
// adds: its keys of those names are renamed.
func TestLog_reservedKeys(t *testing.T) {
	ts := newTestStep(t, "", Limits{})
	kv := "step_id\x00other-step\x00block\x00other-block\x00stream\x00stdout\x00truncated\x00yes\x00user\x00ana\x00"
	ts.mem.put(0, "m")
	ts.mem.put(100, kv)
	if r := ts.call(t, abi.FuncLog, 3, 0, 1, 100, uint64(len(kv))); r != abi.ResultOK {
		t.Fatalf("log = %s", r)
	}
	recs := ts.records(t)
	if len(recs) != 1 {
		t.Fatalf("%d records", len(recs))
	}
	rec := recs[0]
	checkRecordIdentity(t, rec)
	want := map[string]string{
		"guest_step_id": "other-step", "guest_block": "other-block",
		"guest_stream": "stdout", "guest_truncated": "yes", "user": "ana",
	}
	for k, v := range want {
		if rec[k] != v {
			t.Errorf("field %s = %v, want %q (record %v)", k, rec[k], v, rec)
		}
	}
	for _, k := range []string{"stream", "truncated"} {
		if _, ok := rec[k]; ok {
			t.Errorf("the block set the host's field %s: %v", k, rec)
		}
	}
}

func TestLog_truncated(t *testing.T) {
	tests := []struct {
		name      string
		n         int
		truncated bool
	}{
		{"short", 10, false},
		{"exactly 4096 bytes", maxMessage, false},
		{"over 4096 bytes", maxMessage + 1000, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ts := newTestStep(t, "", Limits{})
			ts.mem.put(0, strings.Repeat("m", tc.n))
			if r := ts.call(t, abi.FuncLog, 3, 0, uint64(tc.n), 0, 0); r != abi.ResultOK {
				t.Fatalf("log = %s", r)
			}
			recs := ts.records(t)
			if len(recs) != 1 {
				t.Fatalf("%d records", len(recs))
			}
			msg, _ := recs[0]["@message"].(string)
			if want := min(tc.n, maxMessage); len(msg) != want {
				t.Errorf("message of %d bytes, want %d", len(msg), want)
			}
			if got := recs[0]["truncated"] == true; got != tc.truncated {
				t.Errorf("truncated=%v, want %v (record %v)", recs[0]["truncated"], tc.truncated, recs[0])
			}
		})
	}
}

func TestLog_byteBudget(t *testing.T) {
	// Each step is a log call of a message of msg bytes and a value of
	// value bytes under the key "k".
	type call struct {
		msg, value int
		want       abi.Result
	}
	tests := []struct {
		name    string
		budget  uint64
		calls   []call
		records int
	}{
		{"messages up to the budget", 100, []call{{60, 0, abi.ResultOK}, {40, 0, abi.ResultOK}, {1, 0, abi.ResultLimit}}, 2},
		{"a record over the rest is dropped, a smaller one fits", 100, []call{{60, 0, abi.ResultOK}, {60, 0, abi.ResultLimit}, {30, 0, abi.ResultOK}}, 2},
		{"values count", 100, []call{{50, 60, abi.ResultLimit}, {10, 0, abi.ResultOK}}, 1},
		// 50 bytes of message and a kv_len of 50 ("k\x00", 47 bytes, "\x00").
		{"a record costs its message and its kv_len", 100, []call{{50, 47, abi.ResultOK}, {1, 0, abi.ResultLimit}}, 1},
		{"a cut message counts as 4096 bytes", 5000, []call{{10000, 0, abi.ResultOK}, {500, 0, abi.ResultOK}, {1000, 0, abi.ResultLimit}}, 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ts := newTestStep(t, "", Limits{Log: tc.budget})
			ts.mem.put(0, strings.Repeat("m", 10000))
			dropped := 0
			for i, c := range tc.calls {
				kv := ""
				if c.value > 0 {
					kv = "k\x00" + strings.Repeat("v", c.value) + "\x00"
				}
				ts.mem.put(20000, kv)
				if r := ts.call(t, abi.FuncLog, 3, 0, uint64(c.msg), 20000, uint64(len(kv))); r != c.want {
					t.Errorf("call %d (message %d, value %d bytes) = %s, want %s", i, c.msg, c.value, r, c.want)
				}
				if c.want == abi.ResultLimit {
					dropped++
				}
			}
			if got := len(ts.records(t)); got != tc.records {
				t.Errorf("%d records, want %d", got, tc.records)
			}
			checkDroppedReport(t, ts, dropped)
		})
	}
}

// checkDroppedReport ends the step's logging and checks the count of
// dropped records it reports.
func checkDroppedReport(t *testing.T, ts *testStep, dropped int) {
	t.Helper()
	if ts.st.dropped != uint64(dropped) {
		t.Errorf("dropped %d, want %d", ts.st.dropped, dropped)
	}
	n := len(ts.records(t))
	ts.st.finishLog()
	recs := ts.records(t)
	if dropped == 0 {
		if len(recs) != n {
			t.Errorf("finishLog wrote %v with nothing dropped", recs[n:])
		}
		return
	}
	if len(recs) != n+1 {
		t.Fatalf("finishLog wrote %d records, want 1", len(recs)-n)
	}
	rec := recs[n]
	checkRecordIdentity(t, rec)
	if rec["dropped"] != float64(dropped) {
		t.Errorf("report %v, want dropped=%d", rec, dropped)
	}
}

func TestLog_rateBurst(t *testing.T) {
	const burst = 100 // docs/abi.md §4: 100 records a second, bursts of 100
	synctest.Test(t, func(t *testing.T) {
		ts := newTestStep(t, "", Limits{})
		ts.mem.put(0, "m")
		logOnce := func() abi.Result { return ts.call(t, abi.FuncLog, 3, 0, 1, 0, 0) }

		// Time stands still in the bubble: the burst is all there is.
		for i := range burst {
			if r := logOnce(); r != abi.ResultOK {
				t.Fatalf("record %d of the burst = %s, want ok", i+1, r)
			}
		}
		if r := logOnce(); r != abi.ResultLimit {
			t.Fatalf("record %d = %s, want limit", burst+1, r)
		}

		// 10 ms at 100 records per second earn one record.
		time.Sleep(10 * time.Millisecond)
		if r := logOnce(); r != abi.ResultOK {
			t.Errorf("after 10ms = %s, want ok", r)
		}
		if r := logOnce(); r != abi.ResultLimit {
			t.Errorf("second record after 10ms = %s, want limit", r)
		}

		// A long pause refills the bucket only up to the burst.
		time.Sleep(time.Minute)
		for i := range burst {
			if r := logOnce(); r != abi.ResultOK {
				t.Fatalf("record %d after a pause = %s, want ok", i+1, r)
			}
		}
		if r := logOnce(); r != abi.ResultLimit {
			t.Errorf("record %d after a pause = %s, want limit", burst+1, r)
		}

		if got, want := len(ts.records(t)), 2*burst+1; got != want {
			t.Errorf("%d records, want %d", got, want)
		}
		checkDroppedReport(t, ts, 3)
	})
}

func TestOutputWrite_limit(t *testing.T) {
	tests := []struct {
		name    string
		writes  []int
		results []abi.Result
		output  string
		hit     bool
	}{
		{"up to the cap", []int{10}, []abi.Result{abi.ResultOK}, "0123456789", false},
		{"in pieces up to the cap", []int{4, 6}, []abi.Result{abi.ResultOK, abi.ResultOK}, "0123012345", false},
		{"one write over the cap", []int{11}, []abi.Result{abi.ResultLimit}, "", true},
		{"the write that passes the cap appends nothing", []int{6, 5}, []abi.Result{abi.ResultOK, abi.ResultLimit}, "012345", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ts := newTestStep(t, "", Limits{Output: 10})
			ts.mem.put(0, "0123456789AB")
			for i, n := range tc.writes {
				if r := ts.call(t, abi.FuncOutputWrite, 0, uint64(n)); r != tc.results[i] {
					t.Errorf("write %d of %d bytes = %s, want %s", i, n, r, tc.results[i])
				}
			}
			if got := string(ts.st.output.buf); got != tc.output {
				t.Errorf("output %q, want %q", got, tc.output)
			}
			if ts.st.output.hit != tc.hit {
				t.Errorf("output cap marked hit=%v, want %v", ts.st.output.hit, tc.hit)
			}
		})
	}
}
