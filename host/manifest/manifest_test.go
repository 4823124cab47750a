package manifest

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"
)

// hello is what testdata/hello.hcl and testdata/hello.json both say.
func hello(path string) *Manifest {
	return &Manifest{
		Path:   path,
		Name:   "hello",
		Module: filepath.Join(filepath.Dir(path), "hello.wasm"),
		Engine: "wazero",
		Args:   []string{"--verbose"},
		Limits: Limits{Timeout: 5 * time.Second, Memory: 64 << 20, Output: 1 << 20, Log: 64 << 10},
		Env:    map[string]string{"GREETING": "hi"},
	}
}

func TestParseFile_testdata(t *testing.T) {
	for _, path := range []string{"testdata/hello.hcl", "testdata/hello.json"} {
		t.Run(path, func(t *testing.T) {
			m, err := ParseFile(path)
			if err != nil {
				t.Fatalf("ParseFile: %v", err)
			}
			want := hello(path)
			want.ModuleName = "hello.wasm"
			if !reflect.DeepEqual(m, want) {
				t.Errorf("ParseFile(%q)\n got %+v\nwant %+v", path, m, want)
			}
		})
	}
}

func TestParse_valid(t *testing.T) {
	tests := []struct {
		name     string
		filename string
		src      string
		want     Manifest // Path is filled in from filename
	}{
		{
			name:     "minimal hcl",
			filename: "m.hcl",
			src:      `block "m" { module = "m.wasm" }`,
			want:     Manifest{Name: "m", Module: "m.wasm"},
		},
		{
			name:     "minimal json",
			filename: "m.json",
			src:      `{"block": {"m": {"module": "m.wasm"}}}`,
			want:     Manifest{Name: "m", Module: "m.wasm"},
		},
		{
			name:     "json extension in any case",
			filename: "M.JSON",
			src:      `{"block": {"m": {"module": "m.wasm"}}}`,
			want:     Manifest{Name: "m", Module: "m.wasm"},
		},
		{
			name:     "comments and heredoc-free native syntax",
			filename: "m.hcl",
			src: `# a comment
block "m" {
  // another
  module = "m.wasm" /* and another */
}
`,
			want: Manifest{Name: "m", Module: "m.wasm"},
		},
		{
			name:     "numbers convert to strings for sizes",
			filename: "m.hcl",
			src:      "block \"m\" {\nmodule = \"m.wasm\"\nlimits {\nmemory = 65536\noutput = 1000\n}\n}\n",
			want:     Manifest{Name: "m", Module: "m.wasm", Limits: Limits{Memory: 65536, Output: 1000}},
		},
		{
			name:     "each limit optional",
			filename: "m.hcl",
			src:      "block \"m\" {\nmodule = \"m.wasm\"\nlimits {\nlog = \"1KB\"\n}\n}\n",
			want:     Manifest{Name: "m", Module: "m.wasm", Limits: Limits{Log: 1000}},
		},
		{
			name:     "memory of exactly 4GiB",
			filename: "m.hcl",
			src:      "block \"m\" {\nmodule = \"m.wasm\"\nlimits {\nmemory = \"4GiB\"\n}\n}\n",
			want:     Manifest{Name: "m", Module: "m.wasm", Limits: Limits{Memory: 4 << 30}},
		},
		{
			name:     "empty args and env are set but empty",
			filename: "m.hcl",
			src:      "block \"m\" {\nmodule = \"m.wasm\"\nargs = []\ncapabilities {\nenv = {}\n}\n}\n",
			want:     Manifest{Name: "m", Module: "m.wasm", Args: []string{}, Env: map[string]string{}},
		},
		{
			name:     "empty capabilities grant nothing",
			filename: "m.hcl",
			src:      "block \"m\" {\nmodule = \"m.wasm\"\ncapabilities {\nhttp {}\nfilesystem {}\n}\n}\n",
			want:     Manifest{Name: "m", Module: "m.wasm"},
		},
		{
			name:     "quoted env names and interpolation",
			filename: "m.hcl",
			src:      "block \"m\" {\nmodule = \"m.wasm\"\ncapabilities {\nenv = { \"_A1\" = \"${1 + 1}\", b = \"\" }\n}\n}\n",
			want:     Manifest{Name: "m", Module: "m.wasm", Env: map[string]string{"_A1": "2", "b": ""}},
		},
		{
			name:     "json strings are literal, not templates",
			filename: "m.json",
			src:      `{"block": {"m": {"module": "m.wasm", "args": ["${x}"]}}}`,
			want:     Manifest{Name: "m", Module: "m.wasm", Args: []string{"${x}"}},
		},
		{
			name:     "json empty reserved capabilities",
			filename: "m.json",
			src:      `{"block": {"m": {"module": "m.wasm", "capabilities": {"http": {}, "filesystem": [{}]}}}}`,
			want:     Manifest{Name: "m", Module: "m.wasm"},
		},
		{
			name:     "absolute module path kept",
			filename: "conf/m.hcl",
			src:      `block "m" { module = "/opt/blocks/./m.wasm" }`,
			want:     Manifest{Name: "m", Module: filepath.FromSlash("/opt/blocks/m.wasm")},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := Parse([]byte(tt.src), tt.filename)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			want := tt.want
			want.Path = tt.filename
			if m.ModuleName == "" {
				t.Errorf("ModuleName is empty; want the module as written")
			}
			want.ModuleName = m.ModuleName // as written, checked below
			if !reflect.DeepEqual(m, &want) {
				t.Errorf("Parse\n got %#v\nwant %#v", m, &want)
			}
		})
	}
}

func TestParse_moduleResolution(t *testing.T) {
	tests := []struct {
		filename, module, want string
	}{
		{"m.hcl", "m.wasm", "m.wasm"},
		{"", "m.wasm", "m.wasm"},
		{"conf/m.hcl", "m.wasm", "conf/m.wasm"},
		{"conf/m.hcl", "./wasm/m.wasm", "conf/wasm/m.wasm"},
		{"conf/m.hcl", "../m.wasm", "m.wasm"},
		{"/etc/blockhost/m.json", "m.wasm", "/etc/blockhost/m.wasm"},
		{"/etc/blockhost/m.hcl", "/srv/m.wasm", "/srv/m.wasm"},
	}
	for _, tt := range tests {
		src := `block "m" { module = "` + tt.module + `" }`
		if isJSON(tt.filename) {
			src = `{"block": {"m": {"module": "` + tt.module + `"}}}`
		}
		m, err := Parse([]byte(src), tt.filename)
		if err != nil {
			t.Fatalf("Parse(module %q, filename %q): %v", tt.module, tt.filename, err)
		}
		if want := filepath.FromSlash(tt.want); m.Module != want {
			t.Errorf("Parse(module %q, filename %q).Module = %q, want %q", tt.module, tt.filename, m.Module, want)
		}
	}
}

func TestParseFile_resolvesAgainstManifestDir(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "conf", "m.hcl")
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(`block "m" { module = "../wasm/m.wasm" }`), 0o644); err != nil {
		t.Fatal(err)
	}
	m, err := ParseFile(path)
	if err != nil {
		t.Fatalf("ParseFile: %v", err)
	}
	if want := filepath.Join(dir, "wasm", "m.wasm"); m.Module != want {
		t.Errorf("Module = %q, want %q", m.Module, want)
	}
	if m.Path != path {
		t.Errorf("Path = %q, want %q", m.Path, path)
	}
}

func TestParseFile_unreadable(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name, path string
		is         error // also matched, beyond *fs.PathError naming path
	}{
		{"missing", filepath.Join(dir, "missing.hcl"), fs.ErrNotExist},
		{"directory", dir, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := ParseFile(tt.path)
			if err == nil {
				t.Fatalf("ParseFile(%q) = %+v, want an error", tt.path, m)
			}
			var pe *fs.PathError
			if !errors.As(err, &pe) || pe.Path != tt.path {
				t.Errorf("ParseFile(%q) error %v does not wrap an *fs.PathError naming the path", tt.path, err)
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("ParseFile(%q) error %v is not %v", tt.path, err, tt.is)
			}
			if errors.Is(err, ErrInvalid) {
				t.Errorf("ParseFile(%q) error %v is ErrInvalid; a read failure is not an invalid manifest", tt.path, err)
			}
		})
	}
}

// pos is a diagnostic's position, line:column.
type pos struct{ line, col int }

func TestParse_invalid(t *testing.T) {
	tests := []struct {
		name     string
		filename string
		src      string
		want     []pos // every diagnostic's position, in order
	}{
		// Syntax.
		{"hcl syntax", "m.hcl", "block \"m\" {\n  module = \n}\n", []pos{{2, 12}}},
		{"json syntax", "m.json", "{\"block\": {\"m\": {\"module\": \"m.wasm\",}}}", []pos{{1, 36}}},
		{"hcl read as json", "m.json", `block "m" { module = "m.wasm" }`, []pos{{1, 1}, {1, 1}}},
		{"empty json", "m.json", "", []pos{{1, 1}, {1, 1}}},

		// The one block.
		{"no block", "m.hcl", "", []pos{{1, 1}}},
		{"no block json", "m.json", "{}", []pos{{1, 2}}},
		{"two blocks", "m.hcl", "block \"a\" {\n  module = \"a.wasm\"\n}\nblock \"b\" {\n  module = \"b.wasm\"\n}\n", []pos{{4, 1}}},
		{"three blocks", "m.hcl", "block \"a\" { module = \"a\" }\nblock \"b\" { module = \"b\" }\nblock \"c\" { module = \"c\" }\n", []pos{{2, 1}, {3, 1}}},
		{"two blocks json", "m.json", "{\"block\": {\n\"a\": {\"module\": \"a\"},\n\"b\": {\"module\": \"b\"}}}", []pos{{3, 6}}},
		{"block without name", "m.hcl", "block {\n  module = \"m.wasm\"\n}\n", []pos{{1, 7}}},
		{"block with empty name", "m.hcl", "block \"\" {\n  module = \"m.wasm\"\n}\n", []pos{{1, 7}}},
		{"unknown top-level attribute", "m.hcl", "version = 1\nblock \"m\" { module = \"m.wasm\" }\n", []pos{{1, 1}}},
		{"unknown top-level block", "m.hcl", "block \"m\" { module = \"m.wasm\" }\nplugin \"x\" {}\n", []pos{{2, 1}}},

		// Attributes of the block.
		{"missing module", "m.hcl", "\nblock \"m\" {\n  engine = \"wazero\"\n}\n", []pos{{2, 1}}},
		{"missing module json", "m.json", "{\"block\": {\"m\": {\n\"engine\": \"wazero\"}}}", []pos{{1, 17}}},
		{"empty module", "m.hcl", "block \"m\" {\n  module = \"\"\n}\n", []pos{{2, 12}}},
		{"null module", "m.hcl", "block \"m\" {\n  module = null\n}\n", []pos{{2, 12}}},
		{"module list", "m.hcl", "block \"m\" {\n  module = [\"a\"]\n}\n", []pos{{2, 12}}},
		{"module variable", "m.hcl", "block \"m\" {\n  module = var.x\n}\n", []pos{{2, 12}}},
		{"module function", "m.hcl", "block \"m\" {\n  module = file(\"x\")\n}\n", []pos{{2, 12}}},
		{"empty engine", "m.hcl", "block \"m\" {\n  module = \"m\"\n  engine = \"\"\n}\n", []pos{{3, 12}}},
		{"unknown attribute", "m.hcl", "block \"m\" {\n  module = \"m\"\n  moduel = \"m\"\n}\n", []pos{{3, 3}}},
		{"unknown attribute json", "m.json", "{\"block\": {\"m\": {\"module\": \"m\",\n \"entry\": \"run\"}}}", []pos{{2, 2}}},
		{"unknown block", "m.hcl", "block \"m\" {\n  module = \"m\"\n  network {}\n}\n", []pos{{3, 3}}},
		{"args not a list", "m.hcl", "block \"m\" {\n  module = \"m\"\n  args = \"-v\"\n}\n", []pos{{3, 10}}},
		{"args null element", "m.hcl", "block \"m\" {\n  module = \"m\"\n  args = [\"-v\", null]\n}\n", []pos{{3, 17}}},
		{"args nested list", "m.hcl", "block \"m\" {\n  module = \"m\"\n  args = [[\"-v\"]]\n}\n", []pos{{3, 11}}},
		{"args NUL", "m.hcl", "block \"m\" {\n  module = \"m\"\n  args = [\"a\", \"b\\u0000c\"]\n}\n", []pos{{3, 16}}},

		// Limits.
		{"duplicate limits", "m.hcl", "block \"m\" {\n  module = \"m\"\n  limits {}\n  limits {}\n}\n", []pos{{4, 3}}},
		{"limits with label", "m.hcl", "block \"m\" {\n  module = \"m\"\n  limits \"x\" {}\n}\n", []pos{{3, 10}}},
		{"unknown limit", "m.hcl", "block \"m\" {\n  module = \"m\"\n  limits {\n    cpu = \"1\"\n  }\n}\n", []pos{{4, 5}}},
		{"bad duration", "m.hcl", "block \"m\" {\n  module = \"m\"\n  limits {\n    timeout = \"5 seconds\"\n  }\n}\n", []pos{{4, 15}}},
		{"duration without unit", "m.hcl", "block \"m\" {\n  module = \"m\"\n  limits {\n    timeout = 5\n  }\n}\n", []pos{{4, 15}}},
		{"zero duration", "m.hcl", "block \"m\" {\n  module = \"m\"\n  limits {\n    timeout = \"0s\"\n  }\n}\n", []pos{{4, 15}}},
		{"negative duration", "m.hcl", "block \"m\" {\n  module = \"m\"\n  limits {\n    timeout = \"-1s\"\n  }\n}\n", []pos{{4, 15}}},
		{"overflowing duration", "m.hcl", "block \"m\" {\n  module = \"m\"\n  limits {\n    timeout = \"3000000h\"\n  }\n}\n", []pos{{4, 15}}},
		{"bad size unit", "m.hcl", "block \"m\" {\n  module = \"m\"\n  limits {\n    memory = \"12QB\"\n  }\n}\n", []pos{{4, 14}}},
		{"zero size", "m.hcl", "block \"m\" {\n  module = \"m\"\n  limits {\n    output = \"0KiB\"\n  }\n}\n", []pos{{4, 14}}},
		{"negative size", "m.hcl", "block \"m\" {\n  module = \"m\"\n  limits {\n    log = -1\n  }\n}\n", []pos{{4, 11}}},
		{"overflowing size", "m.hcl", "block \"m\" {\n  module = \"m\"\n  limits {\n    log = \"17179869184GiB\"\n  }\n}\n", []pos{{4, 11}}},
		{"memory over 4GiB", "m.hcl", "block \"m\" {\n  module = \"m\"\n  limits {\n    memory = \"4294967297\"\n  }\n}\n", []pos{{4, 14}}},
		{"bad duration json", "m.json", "{\"block\": {\"m\": {\"module\": \"m\",\n  \"limits\": {\"timeout\": \"soon\"}}}}", []pos{{2, 25}}},
		{"every limit bad", "m.hcl", "block \"m\" {\n  module = \"m\"\n  limits {\n    timeout = \"x\"\n    memory = \"x\"\n    output = \"x\"\n    log = \"x\"\n  }\n}\n",
			[]pos{{4, 15}, {5, 14}, {6, 14}, {7, 11}}},

		// Capabilities.
		{"duplicate capabilities", "m.hcl", "block \"m\" {\n  module = \"m\"\n  capabilities {}\n  capabilities {}\n}\n", []pos{{4, 3}}},
		{"unknown capability", "m.hcl", "block \"m\" {\n  module = \"m\"\n  capabilities {\n    network {}\n  }\n}\n", []pos{{4, 5}}},
		{"env not a map", "m.hcl", "block \"m\" {\n  module = \"m\"\n  capabilities {\n    env = [\"A=b\"]\n  }\n}\n", []pos{{4, 11}}},
		{"env bad name", "m.hcl", "block \"m\" {\n  module = \"m\"\n  capabilities {\n    env = { OK = \"x\", \"NOT-OK\" = \"y\" }\n  }\n}\n", []pos{{4, 23}}},
		{"env name starts with digit", "m.hcl", "block \"m\" {\n  module = \"m\"\n  capabilities {\n    env = {\n      \"1X\" = \"y\"\n    }\n  }\n}\n", []pos{{5, 7}}},
		{"env empty name", "m.hcl", "block \"m\" {\n  module = \"m\"\n  capabilities {\n    env = { \"\" = \"y\" }\n  }\n}\n", []pos{{4, 13}}},
		{"env name with equals", "m.json", "{\"block\": {\"m\": {\"module\": \"m\", \"capabilities\": {\n\"env\": {\"A=B\": \"c\"}}}}}", []pos{{2, 9}}},
		{"env duplicate name", "m.hcl", "block \"m\" {\n  module = \"m\"\n  capabilities {\n    env = {\n      A = \"1\"\n      A = \"2\"\n    }\n  }\n}\n", []pos{{6, 7}}},
		{"env NUL value", "m.hcl", "block \"m\" {\n  module = \"m\"\n  capabilities {\n    env = { A = \"x\\u0000y\" }\n  }\n}\n", []pos{{4, 17}}},
		{"env null value", "m.hcl", "block \"m\" {\n  module = \"m\"\n  capabilities {\n    env = { A = null }\n  }\n}\n", []pos{{4, 17}}},
		{"env list value", "m.hcl", "block \"m\" {\n  module = \"m\"\n  capabilities {\n    env = { A = [] }\n  }\n}\n", []pos{{4, 17}}},
		{"http attribute", "m.hcl", "block \"m\" {\n  module = \"m\"\n  capabilities {\n    http {\n      allow = [\"example.com\"]\n    }\n  }\n}\n", []pos{{5, 7}}},
		{"http nested block", "m.hcl", "block \"m\" {\n  module = \"m\"\n  capabilities {\n    http {\n      host \"example.com\" {}\n    }\n  }\n}\n", []pos{{5, 7}}},
		{"filesystem attribute", "m.hcl", "block \"m\" {\n  module = \"m\"\n  capabilities {\n    filesystem {\n      read = [\"/tmp\"]\n      write = [\"/tmp\"]\n    }\n  }\n}\n", []pos{{5, 7}, {6, 7}}},
		{"http attribute json", "m.json", "{\"block\": {\"m\": {\"module\": \"m\", \"capabilities\": {\n\"http\": {\"allow\": []}}}}}", []pos{{2, 10}}},
		{"duplicate http", "m.hcl", "block \"m\" {\n  module = \"m\"\n  capabilities {\n    http {}\n    http {}\n  }\n}\n", []pos{{5, 5}}},
		{"http as attribute", "m.hcl", "block \"m\" {\n  module = \"m\"\n  capabilities {\n    http = {}\n  }\n}\n", []pos{{4, 5}}},

		// Several problems at once are all reported.
		{"errors in every part", "m.hcl", "block \"\" {\n  args = 1\n  limits {\n    memory = \"0\"\n  }\n  capabilities {\n    env = { \"-\" = \"x\" }\n  }\n}\n",
			[]pos{{1, 1}, {1, 7}, {2, 10}, {4, 14}, {7, 13}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := Parse([]byte(tt.src), tt.filename)
			if err == nil {
				t.Fatalf("Parse = %+v, want an error", m)
			}
			if m != nil {
				t.Errorf("Parse returned a manifest with error %v", err)
			}
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("error %v is not ErrInvalid", err)
			}
			var perr *Error
			if !errors.As(err, &perr) {
				t.Fatalf("error %v is not an *Error", err)
			}
			var got []pos
			for _, d := range perr.Diagnostics {
				got = append(got, pos{d.Line, d.Column})
				if d.File != tt.filename {
					t.Errorf("diagnostic %q names file %q, want %q", d, d.File, tt.filename)
				}
				if d.Summary == "" {
					t.Errorf("diagnostic %q has no summary", d)
				}
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("diagnostic positions = %v, want %v; error:\n%v", got, tt.want, err)
			}
		})
	}
}

// TestError_format checks the documented line format, which editors and
// people rely on, rather than any particular message.
func TestError_format(t *testing.T) {
	err := &Error{Diagnostics: []Diagnostic{
		{File: "m.hcl", Line: 4, Column: 15, Summary: "Invalid timeout", Detail: "bad."},
		{File: "m.hcl", Line: 1, Column: 1, Summary: "Missing block"},
		{File: "m.hcl", Summary: "No position", Detail: "d"},
	}}
	want := "m.hcl:4:15: Invalid timeout: bad.\nm.hcl:1:1: Missing block\nm.hcl: No position: d"
	if got := err.Error(); got != want {
		t.Errorf("Error() =\n%s\nwant\n%s", got, want)
	}
	if !errors.Is(err, ErrInvalid) {
		t.Error("*Error is not ErrInvalid")
	}
	if errors.Is(err, errors.New("manifest: invalid")) {
		t.Error("*Error matches an unrelated error with the same text")
	}
}
