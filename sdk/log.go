package sdk

import (
	"fmt"
	"strconv"

	"github.com/blockhost/blockhost/abi"
	"github.com/blockhost/blockhost/sdk/internal/hostcall"
	"github.com/blockhost/blockhost/sdk/internal/logkv"
)

// Level is a log record's severity.
type Level uint32

// The levels of the log host function.
const (
	LevelTrace Level = Level(abi.LevelTrace)
	LevelDebug Level = Level(abi.LevelDebug)
	LevelInfo  Level = Level(abi.LevelInfo)
	LevelWarn  Level = Level(abi.LevelWarn)
	LevelError Level = Level(abi.LevelError)
)

// String returns the level's name, such as "info".
func (l Level) String() string {
	switch l {
	case LevelTrace:
		return "trace"
	case LevelDebug:
		return "debug"
	case LevelInfo:
		return "info"
	case LevelWarn:
		return "warn"
	case LevelError:
		return "error"
	}
	return "level(" + strconv.FormatUint(uint64(l), 10) + ")"
}

// badKey is the key given to a value that has none: the last element of
// an odd-length keyvals list.
const badKey = "!BADKEY"

// Log writes a log record to the host's log. keyvals alternate keys and
// values; keys that are not strings and all values are formatted with
// fmt.Sprint, and a final key without a value is logged as the value of
// the key "!BADKEY". The host adds the step's id and the block's name.
//
// It returns an error matching ErrLimit when the host dropped the record
// (the step logged more than 64 KiB, or faster than 100 records a second),
// and ErrInvalid for a level other than the five defined ones.
func Log(level Level, msg string, keyvals ...any) error {
	return Logger{}.Log(level, msg, keyvals...)
}

// Logger writes log records that start with a fixed list of key/value
// pairs. The zero Logger has none. A Logger is a value: With returns a new
// one and never changes the receiver, so it is safe to share.
type Logger struct {
	kv []byte // the pairs of With, already encoded
}

// With returns a Logger whose records start with l's pairs and then
// keyvals, which are formatted as Log formats them.
func (l Logger) With(keyvals ...any) Logger {
	return Logger{kv: appendKeyvals(l.kv[:len(l.kv):len(l.kv)], keyvals)}
}

// Log writes a record at level; see the package-level Log.
func (l Logger) Log(level Level, msg string, keyvals ...any) error {
	kv := l.kv
	if len(keyvals) > 0 {
		kv = appendKeyvals(kv[:len(kv):len(kv)], keyvals)
	}
	return callErr(abi.FuncLog, hostcall.Log(uint32(level), validText(msg), kv))
}

// Trace writes a record at LevelTrace, dropping any error; use Log to see it.
func (l Logger) Trace(msg string, keyvals ...any) { _ = l.Log(LevelTrace, msg, keyvals...) }

// Debug writes a record at LevelDebug, dropping any error.
func (l Logger) Debug(msg string, keyvals ...any) { _ = l.Log(LevelDebug, msg, keyvals...) }

// Info writes a record at LevelInfo, dropping any error.
func (l Logger) Info(msg string, keyvals ...any) { _ = l.Log(LevelInfo, msg, keyvals...) }

// Warn writes a record at LevelWarn, dropping any error.
func (l Logger) Warn(msg string, keyvals ...any) { _ = l.Log(LevelWarn, msg, keyvals...) }

// Error writes a record at LevelError, dropping any error.
func (l Logger) Error(msg string, keyvals ...any) { _ = l.Log(LevelError, msg, keyvals...) }

// appendKeyvals encodes keyvals as logkv strings, key then value.
func appendKeyvals(dst []byte, keyvals []any) []byte {
	for i := 0; i < len(keyvals); i += 2 {
		if i+1 == len(keyvals) {
			dst = logkv.AppendString(dst, badKey)
			dst = logkv.AppendString(dst, format(keyvals[i]))
			break
		}
		dst = logkv.AppendString(dst, format(keyvals[i]))
		dst = logkv.AppendString(dst, format(keyvals[i+1]))
	}
	return dst
}

func format(v any) string {
	if s, ok := v.(string); ok {
		return s
	}
	return fmt.Sprint(v)
}
