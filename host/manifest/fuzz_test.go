package manifest

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// FuzzParse feeds arbitrary bytes to Parse in both syntaxes. Whatever the
// input, Parse must not panic and must return either a valid manifest or
// an *Error that matches ErrInvalid and locates every problem.
func FuzzParse(f *testing.F) {
	seeds, err := filepath.Glob("testdata/*.*")
	if err != nil {
		f.Fatal(err)
	}
	for _, path := range seeds {
		src, err := os.ReadFile(path)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(src, isJSON(path))
	}
	f.Add([]byte(`block "m" { module = "m.wasm" }`), false)
	f.Add([]byte(`{"block": {"m": {"module": "m.wasm", "capabilities": {"env": {"A": "b"}, "http": {}}}}}`), true)
	f.Add([]byte("block \"m\" {\n  module = \"m\"\n  limits {\n    timeout = \"0s\"\n    memory = \"5GiB\"\n  }\n}\n"), false)

	f.Fuzz(func(t *testing.T, src []byte, json bool) {
		filename := "fuzz.hcl"
		if json {
			filename = "fuzz.json"
		}
		m, err := Parse(src, filename)
		if err != nil {
			if m != nil {
				t.Fatalf("Parse returned both a manifest and error %v", err)
			}
			var perr *Error
			if !errors.Is(err, ErrInvalid) || !errors.As(err, &perr) {
				t.Fatalf("Parse error %v (%T) is not an *Error matching ErrInvalid", err, err)
			}
			if len(perr.Diagnostics) == 0 {
				t.Fatal("Parse returned an *Error with no diagnostics")
			}
			for _, d := range perr.Diagnostics {
				if d.Line < 1 || d.Column < 1 || d.Summary == "" {
					t.Fatalf("diagnostic %q has no position or no summary", d)
				}
			}
			return
		}
		if m == nil {
			t.Fatal("Parse returned neither a manifest nor an error")
		}
		if m.Path != filename || m.Module == "" || m.Name == "" {
			t.Fatalf("Parse returned an incomplete manifest %+v", m)
		}
		if m.Limits.Timeout < 0 || m.Limits.Memory > MaxMemory {
			t.Fatalf("Parse returned out-of-range limits %+v", m.Limits)
		}
		for name := range m.Env {
			if !validEnvName(name) {
				t.Fatalf("Parse returned invalid env name %q", name)
			}
		}
	})
}
