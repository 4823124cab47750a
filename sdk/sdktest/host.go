//go:build !wasip1

package sdktest

import (
	"fmt"
	"sync"
	"time"

	"github.com/blockhost/blockhost/abi"
	"github.com/blockhost/blockhost/sdk"
	"github.com/blockhost/blockhost/sdk/internal/hostcall"
	"github.com/blockhost/blockhost/sdk/internal/logkv"
)

// The host's caps, from docs/abi.md §4 and §7.
const (
	maxMessage  = 4096     // bytes kept of an error or log message
	maxLogBytes = 64 << 10 // log messages and values per step
	logRate     = 100      // log records a second, sustained
	logBurst    = 100      // log records at once
)

var _ hostcall.Host = (*fakeHost)(nil)

// fakeHost is one step's host. Goroutines the handler starts may call it,
// so every method takes mu.
type fakeHost struct {
	mu sync.Mutex

	input       []byte
	outputLimit int
	deadline    time.Time // zero when the step has none

	output     []byte
	overOutput bool // an output_write was refused for the cap
	err        *sdk.Error

	logs     []Record
	logBytes int
	tokens   float64 // the log rate bucket
	lastFill time.Time
	dropped  int

	calls int

	http fakeHTTP // http.go
	fs   fakeFS   // fs.go
	sql  fakeSQL  // sql.go
}

func newFakeHost(c Config, input []byte) *fakeHost {
	now := time.Now()
	h := &fakeHost{
		input:       append([]byte(nil), input...),
		outputLimit: c.OutputLimit,
		tokens:      logBurst,
		lastFill:    now,
	}
	if h.outputLimit <= 0 {
		h.outputLimit = DefaultOutputLimit
	}
	if c.Timeout > 0 {
		h.deadline = now.Add(c.Timeout)
	}
	h.http.handler = c.HTTP
	h.fs.dirs = c.FS
	h.sql.dbs = c.SQL
	return h
}

// begin counts a call and reports whether the step is over; the caller
// holds mu.
func (h *fakeHost) begin() (over bool) {
	h.calls++
	return h.overLocked()
}

func (h *fakeHost) overLocked() bool {
	return !h.deadline.IsZero() && !time.Now().Before(h.deadline)
}

func (h *fakeHost) InputLen() (uint32, abi.Result) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.begin() {
		return 0, abi.ResultTimeout
	}
	return uint32(len(h.input)), abi.ResultOK
}

func (h *fakeHost) InputRead(buf []byte) (uint32, abi.Result) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.begin() {
		return 0, abi.ResultTimeout
	}
	return uint32(copy(buf, h.input)), abi.ResultOK
}

func (h *fakeHost) OutputWrite(p []byte) abi.Result {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.begin() {
		return abi.ResultTimeout
	}
	if len(h.output)+len(p) > h.outputLimit {
		h.overOutput = true
		return abi.ResultLimit
	}
	h.output = append(h.output, p...)
	return abi.ResultOK
}

func (h *fakeHost) ErrorSet(code, class uint32, msg string) abi.Result {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.begin() {
		return abi.ResultTimeout
	}
	c, cl := abi.Code(code), abi.Class(class)
	if !c.Valid() || c >= 5000 || !cl.Valid() {
		return abi.ResultInvalid
	}
	if len(msg) > maxMessage {
		msg = msg[:maxMessage]
	}
	h.err = sdk.NewError(c, cl, msg)
	return abi.ResultOK
}

func (h *fakeHost) Log(level uint32, msg string, kv []byte) abi.Result {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.begin() {
		return abi.ResultTimeout
	}
	if level < abi.LevelTrace || level > abi.LevelError {
		return abi.ResultInvalid
	}
	strs, err := logkv.Decode(kv)
	if err != nil {
		return abi.ResultInvalid
	}
	rec := Record{Level: sdk.Level(level), Message: msg}
	if len(msg) > maxMessage {
		rec.Message, rec.Truncated = msg[:maxMessage], true
	}
	size := len(rec.Message)
	for i := 0; i < len(strs); i += 2 {
		rec.Fields = append(rec.Fields, Field{Key: strs[i], Value: strs[i+1]})
		size += len(strs[i+1])
	}

	now := time.Now()
	h.tokens = min(logBurst, h.tokens+now.Sub(h.lastFill).Seconds()*logRate)
	h.lastFill = now
	if h.tokens < 1 || h.logBytes+size > maxLogBytes {
		h.dropped++
		return abi.ResultLimit
	}
	h.tokens--
	h.logBytes += size
	h.logs = append(h.logs, rec)
	return abi.ResultOK
}

func (h *fakeHost) Deadline() (int64, abi.Result) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.begin() {
		return 0, abi.ResultTimeout
	}
	if h.deadline.IsZero() {
		return -1, abi.ResultOK
	}
	return int64(time.Until(h.deadline)), abi.ResultOK
}

func (h *fakeHost) Check() abi.Result {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.begin() {
		return abi.ResultTimeout
	}
	return abi.ResultOK
}

// result decides the step's status in the order of docs/abi.md §6, leaving
// out what only WebAssembly can cause (memory cap, traps, exit codes) and
// cancellation, which Call has no way to ask for.
func (h *fakeHost) result(panicked any) Result {
	h.mu.Lock()
	defer h.mu.Unlock()
	res := Result{
		Status:    abi.StatusSuccess,
		Logs:      h.logs,
		Dropped:   h.dropped,
		HostCalls: h.calls,
		Panic:     panicked,
	}
	if len(h.output) > 0 {
		res.Output = h.output
	}
	switch {
	case h.overLocked():
		res.Status = abi.StatusTimeout
		res.Err = sdk.NewError(abi.CodeCancelledByTimeout, abi.ClassPermanent, "step ran past its deadline")
	case h.overOutput:
		res.Status = abi.StatusError
		res.Err = sdk.NewError(abi.CodeQuotaExceeded, abi.ClassPermanent, fmt.Sprintf("output exceeds the %d-byte cap", h.outputLimit))
	case h.err != nil:
		res.Status = abi.StatusError
		res.Err = h.err
	case panicked != nil:
		res.Status = abi.StatusError
		res.Err = sdk.NewError(abi.CodeExecutionFailed, abi.ClassPermanent, fmt.Sprintf("panic: %v", panicked))
	}
	return res
}
