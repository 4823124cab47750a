//go:build !wasip1

package sdk_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"
	"unicode/utf8"

	"github.com/blockhost/blockhost/abi"
	"github.com/blockhost/blockhost/sdk"
	"github.com/blockhost/blockhost/sdk/sdktest"
)

// fields builds the fields of a record from alternating keys and values.
func fields(kv ...string) []sdktest.Field {
	var fs []sdktest.Field
	for i := 0; i < len(kv); i += 2 {
		fs = append(fs, sdktest.Field{Key: kv[i], Value: kv[i+1]})
	}
	return fs
}

// logStep runs a step whose handler is fn and returns its records.
func logStep(t *testing.T, fn func()) sdktest.Result {
	t.Helper()
	return sdktest.Call(t, func(context.Context, []byte) ([]byte, error) {
		fn()
		return nil, nil
	}, nil)
}

func TestLog_encodesKeyvals(t *testing.T) {
	type stringer struct{ time.Duration }
	tests := []struct {
		name    string
		keyvals []any
		want    []sdktest.Field
	}{
		{"none", nil, nil},
		{"strings", []any{"user", "ana"}, fields("user", "ana")},
		{"formatted values", []any{"n", 3, "ok", true, "d", 1500 * time.Millisecond, "err", errors.New("boom")},
			fields("n", "3", "ok", "true", "d", "1.5s", "err", "boom")},
		{"non-string key", []any{7, "seven"}, fields("7", "seven")},
		{"dangling key", []any{"user", "ana", "oops"}, fields("user", "ana", "!BADKEY", "oops")},
		{"nil value", []any{"v", nil}, fields("v", "<nil>")},
		{"NUL in key and value", []any{"a\x00b", "c\x00"}, fields("a\uFFFDb", "c\uFFFD")},
		{"invalid UTF-8", []any{"k", "\xff"}, fields("k", "\uFFFD")},
		{"empty strings", []any{"", ""}, fields("", "")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var err error
			res := logStep(t, func() { err = sdk.Log(sdk.LevelWarn, "msg", tt.keyvals...) })
			if err != nil {
				t.Fatalf("Log: %v", err)
			}
			if len(res.Logs) != 1 {
				t.Fatalf("%d records, want 1", len(res.Logs))
			}
			r := res.Logs[0]
			if r.Level != sdk.LevelWarn || r.Message != "msg" || !slices.Equal(r.Fields, tt.want) {
				t.Errorf("got %s, want warn msg %v", r, tt.want)
			}
		})
	}
}

func TestLog_levels(t *testing.T) {
	tests := []struct {
		level   sdk.Level
		wantErr error
	}{
		{sdk.LevelTrace, nil},
		{sdk.LevelDebug, nil},
		{sdk.LevelInfo, nil},
		{sdk.LevelWarn, nil},
		{sdk.LevelError, nil},
		{0, sdk.ErrInvalid},
		{6, sdk.ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.level.String(), func(t *testing.T) {
			var err error
			res := logStep(t, func() { err = sdk.Log(tt.level, "m") })
			if !errors.Is(err, tt.wantErr) || (err == nil) != (tt.wantErr == nil) {
				t.Fatalf("Log at %v: %v, want %v", tt.level, err, tt.wantErr)
			}
			if wantN := map[bool]int{true: 1, false: 0}[tt.wantErr == nil]; len(res.Logs) != wantN {
				t.Errorf("%d records kept, want %d", len(res.Logs), wantN)
			}
		})
	}
}

func TestLogger_methodsAndWith(t *testing.T) {
	res := logStep(t, func() {
		base := sdk.Logger{}.With("req", 1)
		child := base.With("part", "a")
		base.Trace("t")
		base.Debug("d")
		child.Info("i", "k", "v")
		base.Warn("w")
		child.Error("e")
	})
	want := []struct {
		level  sdk.Level
		msg    string
		fields []sdktest.Field
	}{
		{sdk.LevelTrace, "t", fields("req", "1")},
		{sdk.LevelDebug, "d", fields("req", "1")},
		{sdk.LevelInfo, "i", fields("req", "1", "part", "a", "k", "v")},
		{sdk.LevelWarn, "w", fields("req", "1")},
		{sdk.LevelError, "e", fields("req", "1", "part", "a")},
	}
	if len(res.Logs) != len(want) {
		t.Fatalf("%d records, want %d", len(res.Logs), len(want))
	}
	for i, w := range want {
		r := res.Logs[i]
		if r.Level != w.level || r.Message != w.msg || !slices.Equal(r.Fields, w.fields) {
			t.Errorf("record %d = %s, want %v %s %v", i, r, w.level, w.msg, w.fields)
		}
	}
}

// TestLogger_withDoesNotAlias: two loggers derived from one parent must
// not overwrite each other's pairs through a shared backing array.
func TestLogger_withDoesNotAlias(t *testing.T) {
	res := logStep(t, func() {
		parent := sdk.Logger{}.With("a", "1")
		x := parent.With("x", "1")
		y := parent.With("y", "2")
		x.Info("x")
		y.Info("y")
		parent.Info("p", "z", "3")
		x.Info("x2")
	})
	want := [][]sdktest.Field{
		fields("a", "1", "x", "1"),
		fields("a", "1", "y", "2"),
		fields("a", "1", "z", "3"),
		fields("a", "1", "x", "1"),
	}
	for i, w := range want {
		if !slices.Equal(res.Logs[i].Fields, w) {
			t.Errorf("record %d fields %v, want %v", i, res.Logs[i].Fields, w)
		}
	}
}

func TestLog_longMessageTruncatedByHost(t *testing.T) {
	msg := strings.Repeat("x", 5000)
	res := logStep(t, func() { sdk.Log(sdk.LevelInfo, msg) })
	if len(res.Logs) != 1 || !res.Logs[0].Truncated || len(res.Logs[0].Message) != 4096 {
		t.Fatalf("got %d records, want one truncated to 4096 bytes", len(res.Logs))
	}
}

func TestLog_rateLimit(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var errs []error
		res := logStep(t, func() {
			for range 101 {
				errs = append(errs, sdk.Log(sdk.LevelInfo, "burst"))
			}
			time.Sleep(20 * time.Millisecond) // refills two records
			errs = append(errs, sdk.Log(sdk.LevelInfo, "later"), sdk.Log(sdk.LevelInfo, "later"), sdk.Log(sdk.LevelInfo, "later"))
		})
		for i, err := range errs {
			wantLimit := i == 100 || i == 103
			if got := errors.Is(err, sdk.ErrLimit); got != wantLimit {
				t.Errorf("record %d: err %v, want limit %v", i, err, wantLimit)
			}
		}
		if len(res.Logs) != 102 || res.Dropped != 2 {
			t.Errorf("%d kept, %d dropped; want 102 and 2", len(res.Logs), res.Dropped)
		}
	})
}

func TestLog_byteCap(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		value := strings.Repeat("v", 1000)
		var limited int
		res := logStep(t, func() {
			for range 80 {
				time.Sleep(10 * time.Millisecond) // stay under the rate cap
				if errors.Is(sdk.Log(sdk.LevelInfo, "", "k", value), sdk.ErrLimit) {
					limited++
				}
			}
		})
		// 64 KiB holds 65 values of 1000 bytes; keys do not count.
		if len(res.Logs) != 65 || limited != 15 || res.Dropped != 15 {
			t.Errorf("%d kept, %d limited, %d dropped; want 65, 15, 15", len(res.Logs), limited, res.Dropped)
		}
	})
}

// FuzzLog: whatever strings a block logs, the host accepts the record and
// sees them as valid UTF-8, unchanged when they were valid NUL-free text.
func FuzzLog(f *testing.F) {
	f.Add("msg", "user", "ana")
	f.Add("", "", "")
	f.Add("m\x00", "k\x00", "\xff")
	f.Fuzz(func(t *testing.T, msg, key, value string) {
		var err error
		res := sdktest.Call(nil, func(context.Context, []byte) ([]byte, error) {
			err = sdk.Log(sdk.LevelInfo, msg, key, value)
			return nil, nil
		}, nil)
		if len(msg) > 4096 || len(msg)+len(value) > 64<<10 {
			return
		}
		if err != nil || len(res.Logs) != 1 {
			t.Fatalf("Log(%q, %q, %q): %v, %d records", msg, key, value, err, len(res.Logs))
		}
		r := res.Logs[0]
		if len(r.Fields) != 1 {
			t.Fatalf("fields %v, want one", r.Fields)
		}
		for _, p := range [][2]string{{msg, r.Message}, {key, r.Fields[0].Key}, {value, r.Fields[0].Value}} {
			in, got := p[0], p[1]
			if !utf8.ValidString(got) {
				t.Fatalf("%q arrived as invalid UTF-8 %q", in, got)
			}
			if utf8.ValidString(in) && !strings.ContainsRune(in, 0) && got != in {
				t.Fatalf("%q arrived as %q", in, got)
			}
		}
	})
}

func TestLevel_String(t *testing.T) {
	for l, want := range map[sdk.Level]string{
		sdk.LevelTrace: "trace", sdk.LevelDebug: "debug", sdk.LevelInfo: "info",
		sdk.LevelWarn: "warn", sdk.LevelError: "error", 9: "level(9)",
	} {
		if got := l.String(); got != want {
			t.Errorf("Level(%d).String() = %q, want %q", uint32(l), got, want)
		}
	}
	if sdk.LevelInfo != sdk.Level(abi.LevelInfo) {
		t.Error("LevelInfo does not match abi.LevelInfo")
	}
}
