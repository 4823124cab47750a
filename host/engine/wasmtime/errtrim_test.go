//go:build cgo

package wasmtime

import (
	"errors"
	"testing"
)

func TestTrimError(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"failed to compile: wasm[0]::function[0]\n\nCaused by:\n    0: WebAssembly translation error\n    1: Invalid input WebAssembly code at offset 23: type mismatch\n\nStack backtrace:\n   0: <unknown>\n  10: start_thread\n             at ./nptl/pthread_create.c:442:8",
			"failed to compile: wasm[0]::function[0]: WebAssembly translation error: Invalid input WebAssembly code at offset 23: type mismatch"},
		{"failed to parse WebAssembly module\n\nCaused by:\n    bad magic - expected=[\n        0x0,\n        0x61,\n    ] (at offset 0x0)\n\nStack backtrace:\n   0: <unknown>",
			"failed to parse WebAssembly module: bad magic - expected=[0x0,0x61,] (at offset 0x0)"},
		{"plain message", "plain message"},
	} {
		if got := trimError(errors.New(tc.in)); got != tc.want {
			t.Errorf("trimError(%q)\n got %q\nwant %q", tc.in, got, tc.want)
		}
	}
}
