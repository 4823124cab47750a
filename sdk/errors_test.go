package sdk_test

import (
	"errors"
	"fmt"
	"io/fs"
	"testing"

	"github.com/blockhost/blockhost/abi"
	"github.com/blockhost/blockhost/sdk"
)

var allSentinels = []error{
	sdk.ErrInvalid, sdk.ErrDenied, sdk.ErrNotFound, sdk.ErrExists, sdk.ErrLimit,
	sdk.ErrTimeout, sdk.ErrCancelled, sdk.ErrUnavailable, sdk.ErrIO,
}

func TestCallError_matchesOneSentinel(t *testing.T) {
	tests := []struct {
		result abi.Result
		want   error
	}{
		{abi.ResultInvalid, sdk.ErrInvalid},
		{abi.ResultDenied, sdk.ErrDenied},
		{abi.ResultNotFound, sdk.ErrNotFound},
		{abi.ResultExists, sdk.ErrExists},
		{abi.ResultLimit, sdk.ErrLimit},
		{abi.ResultTimeout, sdk.ErrTimeout},
		{abi.ResultCancelled, sdk.ErrCancelled},
		{abi.ResultUnavailable, sdk.ErrUnavailable},
		{abi.ResultIO, sdk.ErrIO},
		{10, sdk.ErrIO},
		{1 << 31, sdk.ErrIO},
	}
	for _, tt := range tests {
		t.Run(tt.result.String(), func(t *testing.T) {
			err := fmt.Errorf("wrapped: %w", &sdk.CallError{Func: abi.FuncLog, Result: tt.result})
			for _, s := range allSentinels {
				if got := errors.Is(err, s); got != (s == tt.want) {
					t.Errorf("errors.Is(%v, %v) = %v", err, s, got)
				}
			}
			var ce *sdk.CallError
			if !errors.As(err, &ce) || ce.Func != abi.FuncLog {
				t.Errorf("errors.As found %+v, want the log call", ce)
			}
		})
	}
}

func TestCallError_Error(t *testing.T) {
	tests := []struct {
		err  *sdk.CallError
		want string
	}{
		{&sdk.CallError{Func: "output_write", Result: abi.ResultLimit}, "sdk: output_write: limit"},
		{&sdk.CallError{Func: "check", Result: 42}, "sdk: check: io (unknown result 42)"},
	}
	for _, tt := range tests {
		if got := tt.err.Error(); got != tt.want {
			t.Errorf("Error() = %q, want %q", got, tt.want)
		}
	}
}

func TestErrorf_wrapsOnlyWithW(t *testing.T) {
	wrapped := sdk.Errorf(abi.CodeInvalidFormat, abi.ClassPermanent, "reading: %w", fs.ErrNotExist)
	if !errors.Is(wrapped, fs.ErrNotExist) {
		t.Error("Errorf with a w verb does not wrap its operand")
	}
	flat := sdk.Errorf(abi.CodeInvalidFormat, abi.ClassPermanent, "reading: %v", fs.ErrNotExist)
	if errors.Is(flat, fs.ErrNotExist) || errors.Unwrap(flat) != nil {
		t.Error("Errorf with a v verb wraps its operand")
	}
	if flat.Message != "reading: file does not exist" {
		t.Errorf("message %q", flat.Message)
	}
}

func TestRetryable(t *testing.T) {
	if sdk.Retryable(nil) != nil || sdk.Permanent(nil) != nil {
		t.Fatal("Retryable(nil) or Permanent(nil) is not nil")
	}
	base := sdk.NewError(abi.CodeNetworkError, abi.ClassPermanent, "reset")
	err := sdk.Retryable(fmt.Errorf("call: %w", base))

	se, ok := errors.AsType[*sdk.Error](err)
	if !ok {
		t.Fatalf("Retryable returned %T, want *sdk.Error", err)
	}
	if se.Code != abi.CodeNetworkError || se.Class != abi.ClassRetryable || se.Message != "call: reset" {
		t.Errorf("got %v %v %q, want network_error retryable %q", se.Code, se.Class, se.Message, "call: reset")
	}
	if !errors.Is(err, base) {
		t.Error("Retryable does not wrap its argument")
	}
	if base.Class != abi.ClassPermanent {
		t.Error("Retryable changed the error it wraps")
	}
}
