package host

import (
	"bytes"
	"context"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/blockhost/blockhost/abi"
	"github.com/blockhost/blockhost/host/engine"
)

// Log caps (docs/abi.md §4): a token bucket of logBurst records refilled at
// logRate per second, and a byte budget per step (Limits.Log).
const (
	logBurst = 100
	logRate  = 100
)

// logState is the logging part of a step's state.
type logState struct {
	logger     hclog.Logger
	logBudget  uint64
	tokens     float64
	lastRefill time.Time
	dropped    uint64
}

// admit charges one record of n bytes against the step's caps.
func (st *stepState) admit(n int) bool {
	now := time.Now()
	st.tokens = min(logBurst, st.tokens+now.Sub(st.lastRefill).Seconds()*logRate)
	st.lastRefill = now
	if st.tokens < 1 || uint64(n) > st.logBudget {
		st.dropped++
		return false
	}
	st.tokens--
	st.logBudget -= uint64(n)
	return true
}

func (st *stepState) log() hclog.Logger {
	if st.logger == nil {
		st.logger = st.block.rt.logger.Named("block").With("step_id", st.id, "block", st.block.name)
	}
	return st.logger
}

// finishLog reports records dropped by the caps.
func (st *stepState) finishLog() {
	if st.dropped > 0 {
		st.log().Warn("block log records dropped by the log caps", "dropped", st.dropped)
	}
}

// reservedKeys are fields the host sets; a block's keys of these names are
// renamed so that a block cannot pass its records off as another step's.
var reservedKeys = map[string]bool{"step_id": true, "block": true, "stream": true, "truncated": true}

var hclogLevels = [...]hclog.Level{
	abi.LevelTrace: hclog.Trace,
	abi.LevelDebug: hclog.Debug,
	abi.LevelInfo:  hclog.Info,
	abi.LevelWarn:  hclog.Warn,
	abi.LevelError: hclog.Error,
}

func logCall(_ context.Context, st *stepState, mem engine.Memory, stack []uint64) abi.Result {
	level := uint32(stack[0])
	if level < abi.LevelTrace || level > abi.LevelError || mem == nil {
		return abi.ResultInvalid
	}
	msg, ok := mem.Read(uint32(stack[1]), uint32(stack[2]))
	if !ok {
		return abi.ResultInvalid
	}
	kvBytes, ok := mem.Read(uint32(stack[3]), uint32(stack[4]))
	if !ok {
		return abi.ResultInvalid
	}
	kv, ok := decodeKV(kvBytes)
	if !ok {
		return abi.ResultInvalid
	}
	if !st.admit(min(len(msg), maxMessage) + len(kvBytes)) {
		return abi.ResultLimit
	}
	args := make([]any, 0, len(kv)+2)
	for i, s := range kv {
		if i%2 == 0 && reservedKeys[s] {
			s = "guest_" + s
		}
		args = append(args, s)
	}
	if len(msg) > maxMessage {
		args = append(args, "truncated", true)
	}
	st.log().Log(hclogLevels[level], guestString(msg), args...)
	return abi.ResultOK
}

// decodeKV splits a key/value buffer of NUL-terminated strings. An empty
// buffer is no pairs; an odd count or a missing final NUL is invalid.
func decodeKV(b []byte) ([]string, bool) {
	if len(b) == 0 {
		return nil, true
	}
	if b[len(b)-1] != 0 {
		return nil, false
	}
	parts := bytes.Split(b[:len(b)-1], []byte{0})
	if len(parts)%2 != 0 {
		return nil, false
	}
	out := make([]string, len(parts))
	for i, p := range parts {
		out[i] = guestString(p)
	}
	return out, true
}

// logWriter turns a guest's standard stream into log records, one per
// line, under the same caps as the log host call. It never fails a write:
// a guest writing to stderr must not break because logging is capped.
//
// A stack trace is not logged line by line: from the first line that
// starts one (see traceStart) to the end of the stream, lines are counted
// instead, and end logs one record with the count. A Go guest that runs
// out of memory prints dozens of lines of goroutine dumps; the lines
// before the dump ("fatal error: out of memory", "panic: …") say what
// happened and are logged as usual.
type logWriter struct {
	st     *stepState
	stream string
	buf    []byte
	// traceLines counts the lines of a stack trace that were not logged.
	traceLines int
}

func (w *logWriter) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			w.buf = append(w.buf, p...)
			if len(w.buf) >= maxMessage {
				w.flush()
			}
			break
		}
		w.buf = append(w.buf, p[:i]...)
		w.flush()
		p = p[i+1:]
	}
	return n, nil
}

func (w *logWriter) flush() {
	if len(w.buf) == 0 {
		return
	}
	line := w.buf
	w.buf = w.buf[:0]
	if w.traceLines > 0 || traceStart(line) {
		w.traceLines++
		return
	}
	if w.st.admit(min(len(line), maxMessage)) {
		w.st.log().Info(guestString(line), "stream", w.stream)
	}
}

// end logs what is left of the stream once the guest is done, and the
// count of stack trace lines left out. The count is logged whatever the
// log caps: it is the host's record, as the count of dropped records is.
func (w *logWriter) end() {
	w.flush()
	if w.traceLines > 0 {
		w.st.log().Warn("guest stack trace not logged", "stream", w.stream, "lines", w.traceLines)
	}
}

// traceStart reports whether a line of a guest's output starts a stack
// trace: a Go goroutine header ("goroutine 1 [running]:", "goroutine 1
// gp=0x… m=0 [running]:"), the Go runtime's "runtime stack:" or Rust's
// "stack backtrace:".
func traceStart(line []byte) bool {
	switch {
	case string(line) == "runtime stack:" || string(line) == "stack backtrace:":
		return true
	case bytes.HasPrefix(line, []byte("goroutine ")) && bytes.HasSuffix(line, []byte("]:")):
		id, _, _ := bytes.Cut(line[len("goroutine "):], []byte(" "))
		return len(id) > 0 && len(bytes.Trim(id, "0123456789")) == 0
	}
	return false
}
