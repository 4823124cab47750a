//go:build !wasip1

package main

import (
	"testing"

	"github.com/blockhost/blockhost/abi"
	"github.com/blockhost/blockhost/sdk"
	"github.com/blockhost/blockhost/sdk/sdktest"
)

func TestGreet(t *testing.T) {
	tests := []struct {
		name     string
		input    string
		wantOut  string
		wantCode abi.Code // 0: success
		wantLogs int
	}{
		{"greets by name", `{"name":"ana"}`, `{"greeting":"hello, ana"}`, 0, 1},
		{"missing name", `{}`, "", abi.CodeMissingRequiredField, 0},
		{"empty name", `{"name":""}`, "", abi.CodeMissingRequiredField, 0},
		{"not JSON", `ana`, "", abi.CodeInvalidInput, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := sdktest.Call(t, sdk.JSONHandler(greet), []byte(tt.input))
			if string(res.Output) != tt.wantOut {
				t.Errorf("output %q, want %q", res.Output, tt.wantOut)
			}
			switch {
			case tt.wantCode == 0 && res.Err != nil:
				t.Errorf("unexpected error %v", res.Err)
			case tt.wantCode != 0 && (res.Err == nil || res.Err.Code != tt.wantCode || res.Err.Class != abi.ClassPermanent):
				t.Errorf("error %+v, want %v permanent", res.Err, tt.wantCode)
			}
			if len(res.Logs) != tt.wantLogs {
				t.Fatalf("%d log records, want %d", len(res.Logs), tt.wantLogs)
			}
			if tt.wantLogs == 1 {
				if v, _ := res.Logs[0].Value("name"); res.Logs[0].Level != sdk.LevelInfo || v != "ana" {
					t.Errorf("log record %s, want info with name=ana", res.Logs[0])
				}
			}
		})
	}
}
