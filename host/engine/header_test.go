package engine

import (
	"errors"
	"strings"
	"testing"
)

func TestCheckHeader(t *testing.T) {
	if err := CheckHeader([]byte("\x00asm\x01\x00\x00\x00")); err != nil {
		t.Fatalf("a good header: %v", err)
	}
	for _, tc := range []struct{ name, wasm, want string }{
		{"empty", "", "empty file"},
		{"script", "#!/bin/sh\n", `no \0asm header`},
		{"elf", "\x7fELF\x02\x01\x01\x00", `no \0asm header`},
		{"text", "  (module\n", "text format"},
		{"shortMagic", "\x00as", "truncated header: 3 bytes"},
		{"shortVersion", "\x00asm\x01\x00", "truncated header: 6 bytes"},
		{"version2", "\x00asm\x02\x00\x00\x00", "unsupported WebAssembly binary version 2"},
		{"component", "\x00asm\x0d\x00\x01\x00", "component"},
	} {
		err := CheckHeader([]byte(tc.wasm))
		var fe *FormatError
		if !errors.As(err, &fe) || !strings.Contains(fe.Reason, tc.want) {
			t.Errorf("%s: %v, want a FormatError saying %q", tc.name, err, tc.want)
		}
	}
}
