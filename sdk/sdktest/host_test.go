//go:build !wasip1

package sdktest

import (
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/blockhost/blockhost/abi"
)

func TestFakeHost_input(t *testing.T) {
	h := newFakeHost(Config{}, []byte("hello"))
	if n, r := h.InputLen(); n != 5 || r != abi.ResultOK {
		t.Fatalf("InputLen = %d, %v", n, r)
	}
	buf := make([]byte, 3)
	if n, r := h.InputRead(buf); n != 3 || r != abi.ResultOK || string(buf) != "hel" {
		t.Errorf("InputRead into 3 bytes = %d, %v, %q", n, r, buf)
	}
	buf = make([]byte, 10)
	if n, r := h.InputRead(buf); n != 5 || r != abi.ResultOK || string(buf[:n]) != "hello" {
		t.Errorf("InputRead into 10 bytes = %d, %v, %q", n, r, buf[:n])
	}
}

func TestFakeHost_outputLimit(t *testing.T) {
	h := newFakeHost(Config{OutputLimit: 4}, nil)
	steps := []struct {
		write string
		want  abi.Result
	}{
		{"ab", abi.ResultOK},
		{"cde", abi.ResultLimit}, // would make 5: refused whole
		{"cd", abi.ResultOK},
		{"", abi.ResultOK},
		{"e", abi.ResultLimit},
	}
	for _, s := range steps {
		if r := h.OutputWrite([]byte(s.write)); r != s.want {
			t.Errorf("OutputWrite(%q) = %v, want %v", s.write, r, s.want)
		}
	}
	res := h.result(nil)
	if string(res.Output) != "abcd" {
		t.Errorf("output %q, want abcd", res.Output)
	}
	if res.Status != abi.StatusError || res.Err.Code != abi.CodeQuotaExceeded {
		t.Errorf("status %s, err %+v; want quota_exceeded", res.Status, res.Err)
	}
}

func TestFakeHost_errorSet(t *testing.T) {
	tests := []struct {
		name        string
		code, class uint32
		want        abi.Result
	}{
		{"defined code", uint32(abi.CodeNetworkError), uint32(abi.ClassRetryable), abi.ResultOK},
		{"highest block code", uint32(abi.CodeSystemOverload), uint32(abi.ClassPermanent), abi.ResultOK},
		{"host code", uint32(abi.CodeCancelledByUser), uint32(abi.ClassPermanent), abi.ResultInvalid},
		{"undefined code", 1004, uint32(abi.ClassPermanent), abi.ResultInvalid},
		{"undefined class", uint32(abi.CodeNetworkError), 2, abi.ResultInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newFakeHost(Config{}, nil)
			if r := h.ErrorSet(tt.code, tt.class, "m"); r != tt.want {
				t.Fatalf("ErrorSet = %v, want %v", r, tt.want)
			}
			res := h.result(nil)
			if recorded := res.Err != nil; recorded != (tt.want == abi.ResultOK) {
				t.Errorf("recorded %+v after %v", res.Err, tt.want)
			}
		})
	}
}

func TestFakeHost_errorSetCutsAndReplaces(t *testing.T) {
	h := newFakeHost(Config{}, nil)
	h.ErrorSet(uint32(abi.CodeInvalidInput), 0, "first")
	h.ErrorSet(uint32(abi.CodeInvalidFormat), 1, strings.Repeat("m", 5000))
	res := h.result(nil)
	if res.Err.Code != abi.CodeInvalidFormat || res.Err.Class != abi.ClassRetryable {
		t.Errorf("err %v %v, want the later call's invalid_format retryable", res.Err.Code, res.Err.Class)
	}
	if len(res.Err.Message) != 4096 {
		t.Errorf("message %d bytes, want 4096", len(res.Err.Message))
	}
}

func TestFakeHost_logValidation(t *testing.T) {
	tests := []struct {
		name  string
		level uint32
		kv    string
		want  abi.Result
	}{
		{"abi example", abi.LevelInfo, "user\x00ana\x00n\x003\x00", abi.ResultOK},
		{"no pairs", abi.LevelInfo, "", abi.ResultOK},
		{"odd strings", abi.LevelInfo, "user\x00", abi.ResultInvalid},
		{"missing final NUL", abi.LevelInfo, "user\x00ana", abi.ResultInvalid},
		{"level 0", 0, "", abi.ResultInvalid},
		{"level 6", 6, "", abi.ResultInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newFakeHost(Config{}, nil)
			if r := h.Log(tt.level, "m", []byte(tt.kv)); r != tt.want {
				t.Fatalf("Log = %v, want %v", r, tt.want)
			}
			if kept := len(h.result(nil).Logs); kept != map[bool]int{true: 1, false: 0}[tt.want == abi.ResultOK] {
				t.Errorf("%d records kept after %v", kept, tt.want)
			}
		})
	}
}

func TestFakeHost_afterDeadlineEveryCallTimesOut(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newFakeHost(Config{Timeout: time.Second}, []byte("in"))
		if ns, r := h.Deadline(); r != abi.ResultOK || ns != int64(time.Second) {
			t.Fatalf("Deadline = %d, %v; want 1s, ok", ns, r)
		}
		time.Sleep(time.Second)
		results := map[string]abi.Result{
			"check":        h.Check(),
			"output_write": h.OutputWrite([]byte("x")),
			"error_set":    h.ErrorSet(uint32(abi.CodeInvalidInput), 0, "m"),
			"log":          h.Log(abi.LevelInfo, "m", nil),
		}
		_, results["input_len"] = h.InputLen()
		_, results["input_read"] = h.InputRead(make([]byte, 2))
		_, results["deadline"] = h.Deadline()
		for fn, r := range results {
			if r != abi.ResultTimeout {
				t.Errorf("%s after the deadline = %v, want timeout", fn, r)
			}
		}
		res := h.result(nil)
		if res.Status != abi.StatusTimeout || res.Output != nil || len(res.Logs) != 0 || res.Err.Code != abi.CodeCancelledByTimeout {
			t.Errorf("result %+v: want timeout with no effects", res)
		}
		if res.HostCalls != 8 {
			t.Errorf("HostCalls = %d, want 8", res.HostCalls)
		}
	})
}

func TestRecord_ValueAndString(t *testing.T) {
	r := Record{Level: 3, Message: "hi", Fields: []Field{{"a", "1"}, {"b", "x y"}, {"a", "2"}}, Truncated: true}
	if v, ok := r.Value("a"); !ok || v != "1" {
		t.Errorf(`Value("a") = %q, %v; want the first, "1"`, v, ok)
	}
	if _, ok := r.Value("c"); ok {
		t.Error(`Value("c") found a field that is not there`)
	}
	if got, want := r.String(), `info hi a="1" b="x y" a="2" truncated=true`; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
}
