package host

import (
	"testing"

	"github.com/blockhost/blockhost/host/engine"
)

// Every import a reviewer sees is put under the capability it needs.
func TestImportCapability(t *testing.T) {
	for _, tc := range []struct{ module, name, want string }{
		{"blockhost", "http_request", "http"},
		{"blockhost", "http_last_error", "http"},
		{"blockhost", "fs_read", "fs"},
		{"blockhost", "input_len", "core"},
		{"blockhost", "log", "core"},
		{"blockhost", "sql_query", "sql"},
		{"blockhost", "no_such_function", "unknown"},
		{"wasi_snapshot_preview1", "path_open", "wasi"},
		{"extism:host/env", "var_get", "extism"},
		{"extism:host/user", "mine", "extism-user"},
		{"env", "abort", "unknown"},
	} {
		if got := ImportCapability(engine.Import{Module: tc.module, Name: tc.name}); got != tc.want {
			t.Errorf("%s.%s: %q, want %q", tc.module, tc.name, got, tc.want)
		}
	}
}
