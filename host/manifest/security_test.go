package manifest

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

// TestParse_broadGrants: a wildcard over a public suffix and a range
// holding public addresses are refused at the attribute, unless the grant
// says allow_broad = true.
func TestParse_broadGrants(t *testing.T) {
	wrap := func(grant string) string {
		return "block \"m\" {\n  module = \"m\"\n  capabilities {\n    http {\n      grant \"g\" {\n" + grant + "      }\n    }\n  }\n}\n"
	}
	tests := []struct {
		name  string
		grant string
		line  int // of the refusal; 0 when allowed
	}{
		{"wildcard over com", "        host = \"*.com\"\n", 6},
		{"wildcard over co.uk", "        host = \"*.co.uk\"\n", 6},
		{"wildcard below a domain", "        host = \"*.example.com\"\n", 0},
		{"wildcard over com, allow_broad", "        host = \"*.com\"\n        allow_broad = true\n", 0},
		{"all of IPv4", "        host = \"a.example.com\"\n        allow_ranges = [\"0.0.0.0/0\"]\n", 7},
		{"all of IPv6", "        host = \"a.example.com\"\n        allow_ranges = [\"::/0\"]\n", 7},
		{"loopback", "        host = \"a.example.com\"\n        allow_ranges = [\"127.0.0.1/32\", \"::1\"]\n", 0},
		{"all, allow_broad", "        host = \"a.example.com\"\n        allow_ranges = [\"0.0.0.0/0\"]\n        allow_broad = true\n", 0},
		{"allow_broad not a bool", "        host = \"a.example.com\"\n        allow_broad = \"yes\"\n", 7},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, err := Parse([]byte(wrap(tc.grant)), "m.hcl")
			if tc.line == 0 {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			var e *Error
			if !errors.As(err, &e) || len(e.Diagnostics) != 1 || e.Diagnostics[0].Line != tc.line {
				t.Fatalf("got %+v, %v; want one diagnostic on line %d", m, err, tc.line)
			}
		})
	}
}

func TestParse_sensitiveHeaders(t *testing.T) {
	src := `block "m" {
  module = "m"
  capabilities {
    http {
      grant "g" {
        host              = "api.example.com"
        sensitive_headers = ["X-Api-Key", "x-session"]
      }
    }
  }
}`
	m, err := Parse([]byte(src), "m.hcl")
	if err != nil {
		t.Fatal(err)
	}
	if got := m.HTTP[0].SensitiveHeaders; !reflect.DeepEqual(got, []string{"X-Api-Key", "x-session"}) {
		t.Errorf("sensitive_headers %q", got)
	}
	if _, err := Parse([]byte(strings.Replace(src, `"x-session"`, `"x session"`, 1)), "m.hcl"); !errors.Is(err, ErrInvalid) {
		t.Errorf("a header name with a space: %v", err)
	}
}

func TestParse_sha256(t *testing.T) {
	const digest = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
	for _, tc := range []struct{ value, want string }{
		{digest, digest},
		{strings.ToUpper(digest), digest},
		{"sha256:" + digest, digest},
		{"", ""},
		{digest[:63], ""},
		{digest[:63] + "g", ""},
	} {
		src := "block \"m\" {\n  module = \"m\"\n  sha256 = \"" + tc.value + "\"\n}\n"
		m, err := Parse([]byte(src), "m.hcl")
		if tc.want == "" {
			var e *Error
			if !errors.As(err, &e) || e.Diagnostics[0].Line != 3 {
				t.Errorf("sha256 %q: %v; want an error on line 3", tc.value, err)
			}
			continue
		}
		if err != nil || m.SHA256 != tc.want {
			t.Errorf("sha256 %q: %+v, %v", tc.value, m, err)
		}
	}
	m, err := Parse([]byte("block \"m\" {\n  module = \"m\"\n}\n"), "m.hcl")
	if err != nil || m.SHA256 != "" {
		t.Errorf("no pin: %+v, %v", m, err)
	}
}
