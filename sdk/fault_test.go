//go:build !wasip1

package sdk

import (
	"context"
	"strings"
	"testing"

	"github.com/blockhost/blockhost/abi"
	"github.com/blockhost/blockhost/sdk/internal/hostcall"
)

// faultHost answers each host function with a chosen result, so tests can
// make calls fail in ways the sdktest fake never does. It records the
// error_set calls it accepts.
type faultHost struct {
	input   []byte
	short   bool                  // input_read returns one byte less than asked
	results map[string]abi.Result // by function; absent means ok

	errCode, errClass uint32
	errMsg            string
	errSet            bool
}

var _ hostcall.Host = (*faultHost)(nil)

func (h *faultHost) result(fn string) abi.Result { return h.results[fn] }

func (h *faultHost) InputLen() (uint32, abi.Result) {
	return uint32(len(h.input)), h.result(abi.FuncInputLen)
}

func (h *faultHost) InputRead(buf []byte) (uint32, abi.Result) {
	n := copy(buf, h.input)
	if h.short {
		n--
	}
	return uint32(n), h.result(abi.FuncInputRead)
}

func (h *faultHost) OutputWrite([]byte) abi.Result { return h.result(abi.FuncOutputWrite) }

func (h *faultHost) ErrorSet(code, class uint32, msg string) abi.Result {
	if r := h.result(abi.FuncErrorSet); r != abi.ResultOK {
		return r
	}
	h.errCode, h.errClass, h.errMsg, h.errSet = code, class, msg, true
	return abi.ResultOK
}

func (h *faultHost) Log(uint32, string, []byte) abi.Result { return h.result(abi.FuncLog) }
func (h *faultHost) Deadline() (int64, abi.Result)         { return -1, h.result(abi.FuncDeadline) }
func (h *faultHost) Check() abi.Result                     { return h.result(abi.FuncCheck) }

func TestRun_hostFailures(t *testing.T) {
	tests := []struct {
		name    string
		host    faultHost
		wantMsg string // "" means Run must not call error_set
	}{
		{"input_len io", faultHost{results: map[string]abi.Result{abi.FuncInputLen: abi.ResultIO}},
			"sdk: reading input: sdk: input_len: io"},
		{"input_len timeout", faultHost{results: map[string]abi.Result{abi.FuncInputLen: abi.ResultTimeout}}, ""},
		{"input_read cancelled", faultHost{input: []byte("in"), results: map[string]abi.Result{abi.FuncInputRead: abi.ResultCancelled}}, ""},
		{"input_read short", faultHost{input: []byte("in"), short: true},
			"sdk: reading input: sdk: input_read: io"},
		{"deadline unknown result", faultHost{results: map[string]abi.Result{abi.FuncDeadline: 42}},
			"sdk: reading the deadline: sdk: deadline: io (unknown result 42)"},
		{"deadline timeout", faultHost{results: map[string]abi.Result{abi.FuncDeadline: abi.ResultTimeout}}, ""},
		{"output_write limit", faultHost{results: map[string]abi.Result{abi.FuncOutputWrite: abi.ResultLimit}}, ""},
		{"output_write cancelled", faultHost{results: map[string]abi.Result{abi.FuncOutputWrite: abi.ResultCancelled}}, ""},
		{"output_write invalid", faultHost{results: map[string]abi.Result{abi.FuncOutputWrite: abi.ResultInvalid}},
			"sdk: writing output: sdk: output_write: invalid"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := tt.host
			called := false
			restore := hostcall.Install(&h)
			Run(func(context.Context, []byte) ([]byte, error) {
				called = true
				return []byte("out"), nil
			})
			restore()

			if tt.wantMsg == "" {
				if h.errSet {
					t.Fatalf("error_set(%d, %d, %q) called; want no call", h.errCode, h.errClass, h.errMsg)
				}
				return
			}
			if !h.errSet {
				t.Fatal("error_set not called")
			}
			if abi.Code(h.errCode) != abi.CodeInternalError || abi.Class(h.errClass) != abi.ClassPermanent || h.errMsg != tt.wantMsg {
				t.Errorf("error_set(%v, %v, %q), want internal_error permanent %q", abi.Code(h.errCode), abi.Class(h.errClass), h.errMsg, tt.wantMsg)
			}
			if wantCalled := strings.Contains(tt.name, "output_write"); called != wantCalled {
				t.Errorf("handler called = %v, want %v", called, wantCalled)
			}
		})
	}
}

func TestCutMessage(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want int // length of the result
	}{
		{"short", "abc", 3},
		{"exactly the cap", strings.Repeat("a", maxMessage), maxMessage},
		{"over the cap", strings.Repeat("a", maxMessage+1), maxMessage},
		{"3-byte rune across the cap", strings.Repeat("a", maxMessage-1) + "€", maxMessage - 1},
		{"4-byte rune ending at the cap", strings.Repeat("a", maxMessage-4) + "🙂x", maxMessage},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := cutMessage(tt.in)
			if len(got) != tt.want || !strings.HasPrefix(tt.in, got) {
				t.Errorf("cutMessage gave %d bytes, want the first %d", len(got), tt.want)
			}
		})
	}
}
