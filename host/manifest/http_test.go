package manifest

import (
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/blockhost/blockhost/host/httpcap"
)

// fetchGrants is what testdata/http.hcl and testdata/http.json both
// grant.
var fetchGrants = []httpcap.Grant{
	{Name: "api", Host: "api.example.com", Methods: []string{"GET", "POST"}, Paths: []string{"/v1/", "/v2/status"}},
	{
		Name: "local-test", Scheme: "http", Host: "127.0.0.1", Port: 8080,
		AllowRanges:    []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")},
		Redirects:      3,
		ConnectTimeout: 2 * time.Second, TLSTimeout: 3 * time.Second, HeaderTimeout: 4 * time.Second, TotalTimeout: 5 * time.Second,
		MaxRequestBody: 1 << 20, MaxResponseBody: 2 << 20, MaxHeaderBytes: 16 << 10, MaxConcurrent: 2,
	},
}

func TestParse_httpGrants(t *testing.T) {
	for _, path := range []string{"testdata/http.hcl", "testdata/http.json"} {
		t.Run(path, func(t *testing.T) {
			m, err := ParseFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if m.Module != filepath.Join("testdata", "fetch.wasm") {
				t.Errorf("module %q", m.Module)
			}
			if !reflect.DeepEqual(m.HTTP, fetchGrants) {
				t.Errorf("grants\n got %+v\nwant %+v", m.HTTP, fetchGrants)
			}
			if _, err := httpcap.NewPolicy(m.HTTP...); err != nil {
				t.Errorf("the host refuses the grants the manifest accepted: %v", err)
			}
		})
	}
}

func TestParse_httpErrors(t *testing.T) {
	type pos struct{ line, col int }
	wrap := func(grant string) string {
		return "block \"m\" {\n  module = \"m\"\n  capabilities {\n    http {\n" + grant + "    }\n  }\n}\n"
	}
	tests := []struct {
		name string
		src  string
		want []pos
	}{
		{"no host", wrap("      grant \"g\" {\n      }\n"), []pos{{5, 17}}},
		{"empty host", wrap("      grant \"g\" {\n        host = \"\"\n      }\n"), []pos{{6, 16}}},
		{"bad scheme", wrap("      grant \"g\" {\n        host = \"a.example\"\n        scheme = \"ftp\"\n      }\n"), []pos{{7, 18}}},
		{"port too big", wrap("      grant \"g\" {\n        host = \"a.example\"\n        port = 70000\n      }\n"), []pos{{7, 16}}},
		{"port not a number", wrap("      grant \"g\" {\n        host = \"a.example\"\n        port = \"https\"\n      }\n"), []pos{{7, 16}}},
		{"lower-case method", wrap("      grant \"g\" {\n        host = \"a.example\"\n        methods = [\"get\"]\n      }\n"), []pos{{7, 19}}},
		{"methods not a list", wrap("      grant \"g\" {\n        host = \"a.example\"\n        methods = \"GET\"\n      }\n"), []pos{{7, 19}}},
		{"relative path", wrap("      grant \"g\" {\n        host = \"a.example\"\n        paths = [\"v1\"]\n      }\n"), []pos{{7, 17}}},
		{"bad range", wrap("      grant \"g\" {\n        host = \"a.example\"\n        allow_ranges = [\"10.0.0.0/33\"]\n      }\n"), []pos{{7, 24}}},
		{"loopback host without a range", wrap("      grant \"g\" {\n        host = \"127.0.0.1\"\n      }\n"), []pos{{6, 16}}},
		{"metadata host", wrap("      grant \"g\" {\n        host = \"169.254.169.254\"\n        allow_ranges = [\"10.0.0.0/8\"]\n      }\n"), []pos{{6, 16}}},
		{"too many redirects", wrap("      grant \"g\" {\n        host = \"a.example\"\n        redirects = 21\n      }\n"), []pos{{7, 21}}},
		{"bad timeout", wrap("      grant \"g\" {\n        host = \"a.example\"\n        total_timeout = \"0s\"\n      }\n"), []pos{{7, 25}}},
		{"bad size", wrap("      grant \"g\" {\n        host = \"a.example\"\n        max_response_body = \"lots\"\n      }\n"), []pos{{7, 29}}},
		{"zero concurrency", wrap("      grant \"g\" {\n        host = \"a.example\"\n        max_concurrent = 0\n      }\n"), []pos{{7, 26}}},
		{"unknown attribute", wrap("      grant \"g\" {\n        host = \"a.example\"\n        proxy = \"x\"\n      }\n"), []pos{{7, 9}}},
		{"bad grant name", wrap("      grant \"a b\" {\n        host = \"a.example\"\n      }\n"), []pos{{5, 13}}},
		{"duplicate grant", wrap("      grant \"g\" {\n        host = \"a.example\"\n      }\n      grant \"g\" {\n        host = \"b.example\"\n      }\n"), []pos{{8, 13}}},
		{"grant without a name", wrap("      grant {\n        host = \"a.example\"\n      }\n"), []pos{{5, 13}}},
		{"two bad grants", wrap("      grant \"g\" {\n        host = \"*\"\n      }\n      grant \"h\" {\n        host = \"a.example\"\n        port = 0\n      }\n"), []pos{{6, 16}, {10, 16}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, err := Parse([]byte(tc.src), "m.hcl")
			var perr *Error
			if !errors.Is(err, ErrInvalid) || !errors.As(err, &perr) || m != nil {
				t.Fatalf("Parse = %+v, %v; want an invalid manifest", m, err)
			}
			var got []pos
			for _, d := range perr.Diagnostics {
				got = append(got, pos{d.Line, d.Column})
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("positions %v, want %v:\n%v", got, tc.want, err)
			}
		})
	}
}

// FuzzParseHTTP parses manifests with http sections. Whatever grants
// Parse returns, the host must accept: the manifest never passes a grant
// the host would refuse.
func FuzzParseHTTP(f *testing.F) {
	for _, path := range []string{"testdata/http.hcl", "testdata/http.json"} {
		src, err := os.ReadFile(path)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(src, filepath.Ext(path) == ".json")
	}
	f.Add([]byte("block \"m\" {\n module = \"m\"\n capabilities {\n  http {\n   grant \"g\" {\n    host = \"*.example.com\"\n    port = 8443\n   }\n  }\n }\n}\n"), false)
	f.Add([]byte("block \"m\" {\n module = \"m\"\n capabilities {\n  http {\n   grant \"g\" {\n    host = \"::1\"\n    allow_ranges = [\"::1\"]\n   }\n  }\n }\n}\n"), false)
	f.Add([]byte(`{"block":{"m":{"module":"m","capabilities":{"http":{"grant":{"g":{"host":"127.1","allow_ranges":["127.0.0.0/8"],"redirects":"2"}}}}}}}`), true)
	f.Fuzz(func(t *testing.T, src []byte, json bool) {
		name := "fuzz.hcl"
		if json {
			name = "fuzz.json"
		}
		m, err := Parse(src, name)
		if err != nil {
			return
		}
		if _, err := httpcap.NewPolicy(m.HTTP...); err != nil {
			t.Fatalf("Parse accepted grants the host refuses: %v\n%+v", err, m.HTTP)
		}
	})
}
