//go:build !wasip1

package sdk_test

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/blockhost/blockhost/abi"
	"github.com/blockhost/blockhost/sdk"
	"github.com/blockhost/blockhost/sdk/sdktest"
)

func echo(_ context.Context, in []byte) ([]byte, error) { return in, nil }

func TestRun_writesOutput(t *testing.T) {
	res := sdktest.Call(t, echo, []byte("hello"))
	if res.Status != abi.StatusSuccess || res.Err != nil {
		t.Fatalf("status %s, err %v; want success", res.Status, res.Err)
	}
	if string(res.Output) != "hello" {
		t.Errorf("output %q, want %q", res.Output, "hello")
	}
}

func TestRun_emptyInputAndOutput(t *testing.T) {
	var got []byte
	res := sdktest.Call(t, func(_ context.Context, in []byte) ([]byte, error) {
		got = in
		return nil, nil
	}, nil)
	if res.Status != abi.StatusSuccess {
		t.Fatalf("status %s, want success", res.Status)
	}
	if got == nil || len(got) != 0 {
		t.Errorf("handler got input %#v, want empty non-nil", got)
	}
	if res.Output != nil {
		t.Errorf("output %q, want none", res.Output)
	}
}

func TestRun_errors(t *testing.T) {
	sdkErr := sdk.NewError(abi.CodeResourceUnavailable, abi.ClassRetryable, "upstream busy")
	tests := []struct {
		name      string
		err       error
		wantCode  abi.Code
		wantClass abi.Class
		wantMsg   string
	}{
		{"plain error", errors.New("boom"), abi.CodeExecutionFailed, abi.ClassPermanent, "boom"},
		{"sdk error", sdkErr, abi.CodeResourceUnavailable, abi.ClassRetryable, "upstream busy"},
		{"wrapped sdk error", fmt.Errorf("fetching: %w", sdkErr), abi.CodeResourceUnavailable, abi.ClassRetryable, "fetching: upstream busy"},
		{"retryable plain error", sdk.Retryable(fs.ErrNotExist), abi.CodeExecutionFailed, abi.ClassRetryable, "file does not exist"},
		{"permanent sdk error", sdk.Permanent(sdkErr), abi.CodeResourceUnavailable, abi.ClassPermanent, "upstream busy"},
		{"errorf", sdk.Errorf(abi.CodeInvalidFormat, abi.ClassPermanent, "field %q: %w", "when", fs.ErrInvalid), abi.CodeInvalidFormat, abi.ClassPermanent, `field "when": invalid argument`},
		{"empty message", &sdk.Error{Code: abi.CodeSystemOverload, Class: abi.ClassRetryable}, abi.CodeSystemOverload, abi.ClassRetryable, "system_overload(4002)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := sdktest.Call(t, func(context.Context, []byte) ([]byte, error) {
				return []byte("discarded"), tt.err
			}, nil)
			if res.Status != abi.StatusError || res.Err == nil {
				t.Fatalf("status %s, err %v; want error", res.Status, res.Err)
			}
			if res.Err.Code != tt.wantCode || res.Err.Class != tt.wantClass || res.Err.Message != tt.wantMsg {
				t.Errorf("got %v %v %q, want %v %v %q", res.Err.Code, res.Err.Class, res.Err.Message, tt.wantCode, tt.wantClass, tt.wantMsg)
			}
			if res.Output != nil {
				t.Errorf("output %q written for a failed step", res.Output)
			}
		})
	}
}

func TestRun_refusedCodeBecomesExecutionFailed(t *testing.T) {
	tests := []struct {
		name string
		err  *sdk.Error
	}{
		{"host code", sdk.NewError(abi.CodeCancelledByUser, abi.ClassPermanent, "stop")},
		{"unknown code", sdk.NewError(1234, abi.ClassPermanent, "stop")},
		{"zero code", &sdk.Error{Message: "stop"}},
		{"unknown class", sdk.NewError(abi.CodeInvalidInput, 7, "stop")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := sdktest.Call(t, func(context.Context, []byte) ([]byte, error) { return nil, tt.err }, nil)
			if res.Err == nil || res.Err.Code != abi.CodeExecutionFailed || res.Err.Class != abi.ClassPermanent {
				t.Fatalf("err %+v, want execution_failed permanent", res.Err)
			}
			if !strings.HasSuffix(res.Err.Message, ": stop") {
				t.Errorf("message %q lost the block's message", res.Err.Message)
			}
		})
	}
}

func TestRun_messageCutAtCharacterBoundary(t *testing.T) {
	// 4095 ASCII bytes then a 2-byte character: the host's cut at 4096
	// would split it, so the sdk cuts before it.
	msg := strings.Repeat("a", 4095) + "é" + strings.Repeat("b", 100)
	res := sdktest.Call(t, func(context.Context, []byte) ([]byte, error) { return nil, errors.New(msg) }, nil)
	if res.Err == nil {
		t.Fatal("no error recorded")
	}
	if got := res.Err.Message; got != msg[:4095] {
		t.Errorf("message is %d bytes (valid UTF-8: %v), want the first 4095", len(got), utf8.ValidString(got))
	}
}

func TestRun_invalidUTF8MessageIsRepaired(t *testing.T) {
	res := sdktest.Call(t, func(context.Context, []byte) ([]byte, error) { return nil, errors.New("bad \xff byte") }, nil)
	if res.Err == nil || res.Err.Message != "bad \uFFFD byte" {
		t.Fatalf("err %+v, want message %q", res.Err, "bad \uFFFD byte")
	}
}

func TestRun_outputOverCapIsQuotaExceeded(t *testing.T) {
	big := make([]byte, sdktest.DefaultOutputLimit+1)
	res := sdktest.Call(t, func(context.Context, []byte) ([]byte, error) { return big, nil }, nil)
	if res.Status != abi.StatusError || res.Err == nil || res.Err.Code != abi.CodeQuotaExceeded {
		t.Fatalf("status %s, err %+v; want error quota_exceeded", res.Status, res.Err)
	}
	if res.Output != nil {
		t.Errorf("%d bytes of output kept, want none", len(res.Output))
	}

	exact := make([]byte, sdktest.DefaultOutputLimit)
	res = sdktest.Call(t, func(context.Context, []byte) ([]byte, error) { return exact, nil }, nil)
	if res.Status != abi.StatusSuccess || len(res.Output) != len(exact) {
		t.Fatalf("output at the cap: status %s, %d bytes; want success with all", res.Status, len(res.Output))
	}
}

func TestRun_panicIsRecordedAndRepanics(t *testing.T) {
	res := sdktest.Call(t, func(context.Context, []byte) ([]byte, error) { panic("kaput") }, nil)
	if res.Panic != "kaput" {
		t.Errorf("Panic = %v, want kaput", res.Panic)
	}
	if res.Err == nil || res.Err.Code != abi.CodeExecutionFailed || res.Err.Message != "panic: kaput" {
		t.Errorf("err %+v, want execution_failed %q", res.Err, "panic: kaput")
	}
}

func TestRun_contextCarriesDeadline(t *testing.T) {
	var deadline time.Time
	var has bool
	h := func(ctx context.Context, _ []byte) ([]byte, error) {
		deadline, has = ctx.Deadline()
		return nil, nil
	}

	sdktest.Call(t, h, nil)
	if has {
		t.Errorf("a step without a deadline gave the context deadline %v", deadline)
	}

	start := time.Now()
	sdktest.Config{Timeout: time.Hour}.Call(t, h, nil)
	if !has {
		t.Fatal("the context has no deadline")
	}
	if d := deadline.Sub(start); d < 59*time.Minute || d > time.Hour+time.Minute {
		t.Errorf("deadline %v after the start, want about an hour", d)
	}
}

func TestRun_panicsWithoutHost(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("Run outside a step did not panic")
		}
	}()
	sdk.Run(echo)
}

type greeting struct {
	Greeting string `json:"greeting"`
}

type person struct {
	Name string `json:"name"`
}

func greet(_ context.Context, in person) (greeting, error) {
	if in.Name == "" {
		return greeting{}, sdk.NewError(abi.CodeMissingRequiredField, abi.ClassPermanent, `"name" is required`)
	}
	return greeting{Greeting: "hello, " + in.Name}, nil
}

func TestJSONHandler(t *testing.T) {
	tests := []struct {
		name     string
		input    string
		wantOut  string
		wantCode abi.Code // 0 for success
	}{
		{"valid", `{"name":"ana"}`, `{"greeting":"hello, ana"}`, 0},
		{"unknown fields ignored", `{"name":"ana","age":3}`, `{"greeting":"hello, ana"}`, 0},
		{"handler error", `{}`, "", abi.CodeMissingRequiredField},
		{"not JSON", `name=ana`, "", abi.CodeInvalidInput},
		{"empty", ``, "", abi.CodeInvalidInput},
		{"wrong type", `{"name":3}`, "", abi.CodeInvalidInput},
		{"trailing data", `{"name":"ana"} x`, "", abi.CodeInvalidInput},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := sdktest.Call(t, sdk.JSONHandler(greet), []byte(tt.input))
			if tt.wantCode == 0 {
				if res.Err != nil || string(res.Output) != tt.wantOut {
					t.Fatalf("got %q, %v; want %q", res.Output, res.Err, tt.wantOut)
				}
				return
			}
			if res.Err == nil || res.Err.Code != tt.wantCode || res.Err.Class != abi.ClassPermanent {
				t.Fatalf("err %+v, want %v permanent", res.Err, tt.wantCode)
			}
		})
	}
}

func TestJSONHandler_unencodableOutput(t *testing.T) {
	h := sdk.JSONHandler(func(context.Context, struct{}) (func(), error) { return func() {}, nil })
	res := sdktest.Call(t, h, []byte(`{}`))
	if res.Err == nil || res.Err.Code != abi.CodeExecutionFailed {
		t.Fatalf("err %+v, want execution_failed", res.Err)
	}
}

func TestInput_raw(t *testing.T) {
	raw := []byte(" {\"name\" : \"ana\"}\n") // decoded, the spacing would be gone
	var got []byte
	var gotErr error
	res := sdktest.Call(t, sdk.JSONHandler(func(_ context.Context, in struct{ Name string }) (string, error) {
		got, gotErr = sdk.Input()
		return in.Name, nil
	}), raw)
	if res.Status != abi.StatusSuccess || string(res.Output) != `"ana"` {
		t.Fatalf("got %s %q %v, want success \"ana\"", res.Status, res.Output, res.Err)
	}
	if gotErr != nil || string(got) != string(raw) {
		t.Errorf("sdk.Input() = %q, %v; want %q", got, gotErr, raw)
	}
	if _, err := sdk.Input(); !errors.Is(err, sdk.ErrUnavailable) {
		t.Errorf("sdk.Input() outside a step: %v, want ErrUnavailable", err)
	}
}

// Input inside Run is the handler's own slice: a large input is not copied
// again.
func TestInput_noCopy(t *testing.T) {
	same := false
	sdktest.Call(t, func(_ context.Context, in []byte) ([]byte, error) {
		raw, err := sdk.Input()
		same = err == nil && len(raw) == len(in) && &raw[0] == &in[0]
		return nil, nil
	}, []byte("input"))
	if !same {
		t.Error("sdk.Input() in a handler is not the slice the handler was given")
	}
}
