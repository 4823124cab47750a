package httpcap

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
)

func mustPolicy(t testing.TB, grants ...Grant) *Policy {
	t.Helper()
	p, err := NewPolicy(grants...)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func prefixes(cidrs ...string) []netip.Prefix {
	out := make([]netip.Prefix, len(cidrs))
	for i, c := range cidrs {
		out[i] = netip.MustParsePrefix(c)
	}
	return out
}

// TestPolicy_grantFields checks every field of a grant with a pair: a
// request it allows and, changing only that field, one it denies.
func TestPolicy_grantFields(t *testing.T) {
	tests := []struct {
		name    string
		grant   Grant
		method  string
		allowed string
		denied  string
		why     string // in the denial's message
	}{
		{"default scheme is https", Grant{Host: "api.example.com"}, "GET",
			"https://api.example.com/", "http://api.example.com:443/", "scheme https"},
		{"scheme http", Grant{Scheme: "http", Host: "api.example.com"}, "GET",
			"http://api.example.com/", "https://api.example.com:80/", "scheme http"},
		{"exact host", Grant{Host: "api.example.com"}, "GET",
			"https://API.EXAMPLE.COM./x", "https://www.example.com/x", "host api.example.com"},
		{"exact host is not a suffix", Grant{Host: "example.com"}, "GET",
			"https://example.com/", "https://api.example.com/", "host example.com"},
		{"exact host is not a prefix", Grant{Host: "example.com"}, "GET",
			"https://example.com/", "https://example.com.evil.test/", "host example.com"},
		{"wildcard host", Grant{Host: "*.example.com"}, "GET",
			"https://a.b.example.com/", "https://example.com/", "host *.example.com"},
		{"wildcard needs the dot", Grant{Host: "*.example.com"}, "GET",
			"https://a.example.com/", "https://evilexample.com/", "host *.example.com"},
		{"IP host", Grant{Scheme: "http", Host: "127.0.0.1", Port: 8080, AllowRanges: prefixes("127.0.0.1/32")}, "GET",
			"http://127.1:8080/", "http://127.0.0.2:8080/", "host 127.0.0.1"},
		{"IPv6 host", Grant{Scheme: "http", Host: "[::1]", Port: 8080, AllowRanges: prefixes("::1/128")}, "GET",
			"http://[::1]:8080/", "http://[::2]:8080/", "host [::1]"},
		{"name grant does not match an address", Grant{Host: "localhost", AllowRanges: prefixes("127.0.0.0/8")}, "GET",
			"https://localhost/", "https://127.0.0.1/", "host localhost"},
		{"default port", Grant{Host: "api.example.com"}, "GET",
			"https://api.example.com:443/", "https://api.example.com:8443/", "port 443"},
		{"explicit port", Grant{Host: "api.example.com", Port: 8443}, "GET",
			"https://api.example.com:8443/", "https://api.example.com/", "port 8443"},
		{"default methods", Grant{Host: "api.example.com"}, "HEAD",
			"https://api.example.com/", "", ""},
		{"default methods exclude POST", Grant{Host: "api.example.com"}, "POST",
			"", "https://api.example.com/", "methods GET,HEAD"},
		{"listed method", Grant{Host: "api.example.com", Methods: []string{"POST"}}, "POST",
			"https://api.example.com/", "", ""},
		{"unlisted method", Grant{Host: "api.example.com", Methods: []string{"POST"}}, "GET",
			"", "https://api.example.com/", "methods POST"},
		{"path prefix with slash", Grant{Host: "api.example.com", Paths: []string{"/v1/"}}, "GET",
			"https://api.example.com/v1/users?x=1", "https://api.example.com/v1", "paths /v1/"},
		{"path prefix at a segment boundary", Grant{Host: "api.example.com", Paths: []string{"/v1"}}, "GET",
			"https://api.example.com/v1", "https://api.example.com/v10", "paths /v1"},
		{"path prefix below", Grant{Host: "api.example.com", Paths: []string{"/v1"}}, "GET",
			"https://api.example.com/v1/x", "https://api.example.com/v2/x", "paths /v1"},
		{"escaped slash decodes before matching", Grant{Host: "api.example.com", Paths: []string{"/v1/"}}, "GET",
			"https://api.example.com/v1%2Fx", "https://api.example.com/v2%2Fv1/", "paths /v1/"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.grant.Name = "g"
			p := mustPolicy(t, tc.grant)
			if tc.allowed != "" {
				if name, _, err := p.Check(tc.method, tc.allowed); err != nil || name != "g" {
					t.Errorf("Check(%s %s) = %q, %v; want allowed by g", tc.method, tc.allowed, name, err)
				}
			}
			if tc.denied != "" {
				_, _, err := p.Check(tc.method, tc.denied)
				if !errors.Is(err, ErrDenied) {
					t.Fatalf("Check(%s %s) = %v; want denied", tc.method, tc.denied, err)
				}
				if !strings.Contains(err.Error(), tc.why) || !strings.Contains(err.Error(), "grants: g:") {
					t.Errorf("denial %q does not say %q and name the grants", err, tc.why)
				}
			}
		})
	}
}

func TestPolicy_allowRangesPairs(t *testing.T) {
	p := mustPolicy(t,
		Grant{Name: "lo", Scheme: "http", Host: "svc.test", AllowRanges: prefixes("127.0.0.0/8")},
		Grant{Name: "pub", Scheme: "http", Host: "pub.test"},
		Grant{Name: "mapped", Scheme: "http", Host: "m.test", AllowRanges: prefixes("::ffff:0:0/96")},
	)
	tests := []struct {
		grant string
		ip    string
		deny  string // range named, "" when allowed
	}{
		{"lo", "127.0.0.1", ""},
		{"lo", "127.9.9.9", ""},
		{"lo", "10.0.0.1", "private"},
		{"lo", "169.254.169.254", "link-local (cloud metadata)"},
		{"lo", "8.8.8.8", ""}, // public stays allowed
		{"lo", "::1", "loopback"},
		{"lo", "::ffff:127.0.0.1", "IPv4-mapped"},
		{"pub", "127.0.0.1", "loopback"},
		{"pub", "93.184.216.34", ""},
		// Lifting the mapped range still checks what it maps to.
		{"mapped", "::ffff:8.8.8.8", ""},
		{"mapped", "::ffff:169.254.169.254", "link-local (cloud metadata)"},
	}
	for _, tc := range tests {
		err := p.CheckAddr(tc.grant, netip.MustParseAddr(tc.ip))
		var e *Error
		switch {
		case tc.deny == "" && err != nil:
			t.Errorf("CheckAddr(%s, %s) = %v; want allowed", tc.grant, tc.ip, err)
		case tc.deny != "" && (!errors.As(err, &e) || !errors.Is(err, ErrDenied) || e.Range != tc.deny || e.Grant != tc.grant):
			t.Errorf("CheckAddr(%s, %s) = %v; want denied in range %q", tc.grant, tc.ip, err, tc.deny)
		}
	}
	if err := p.CheckAddr("absent", netip.MustParseAddr("8.8.8.8")); !errors.Is(err, ErrDenied) {
		t.Errorf("CheckAddr of an unknown grant = %v", err)
	}
}

// ssrfPolicy is the policy the SSRF vectors run against: a public API, a
// wildcard, and a loopback test server reached through an explicit range,
// as the tests reach their own servers.
func ssrfPolicy(t testing.TB) *Policy {
	return mustPolicy(t,
		Grant{Name: "api", Host: "api.example.com", Methods: []string{"GET", "POST"}, Paths: []string{"/v1/"}},
		Grant{Name: "cdn", Scheme: "http", Host: "*.cdn.example.net"},
		Grant{Name: "local", Scheme: "http", Host: "127.0.0.1", Port: 8080, AllowRanges: prefixes("127.0.0.1/32")},
	)
}

// TestPolicy_ssrfVectors runs request URLs an attacker would try against
// the decision, which reads no network. Each must be refused as denied
// or, where the URL cannot be read at all, as invalid.
func TestPolicy_ssrfVectors(t *testing.T) {
	p := ssrfPolicy(t)
	vectors := []struct {
		url     string
		invalid bool // refused as a malformed request rather than denied
	}{
		{url: "http://127.0.0.1/"},
		{url: "http://127.0.0.1:8081/"},
		{url: "http://127.0.0.2:8080/"},
		{url: "http://localhost:8080/"},
		{url: "http://169.254.169.254/latest/meta-data/"},
		{url: "http://169.254.169.254:8080/latest/meta-data/"},
		{url: "http://[::1]:8080/"},
		{url: "http://0.0.0.0:8080/"},
		{url: "http://0:8080/"},
		{url: "http://2130706433/"},
		{url: "http://0x7f000001/"},
		{url: "http://017700000001/"},
		{url: "http://0x7f.0.0.1/"},
		{url: "http://0177.0.0.1/"},
		{url: "http://127.1/"},
		{url: "http://2852039166/"},
		{url: "http://0xa9fea9fe/"},
		{url: "http://0251.0376.0251.0376/"},
		{url: "http://[::ffff:127.0.0.1]:8080/"},
		{url: "http://[::ffff:7f00:1]:8080/"},
		{url: "http://[0:0:0:0:0:ffff:169.254.169.254]/"},
		{url: "http://[64:ff9b::a9fe:a9fe]/"},
		{url: "http://[2002:a9fe:a9fe::]/"},
		{url: "http://[fe80::1%25eth0]/"},
		{url: "http://[fd00::1]/"},
		{url: "http://10.0.0.1/"},
		{url: "http://172.16.0.1/"},
		{url: "http://192.168.1.1/"},
		{url: "http://100.64.0.1/"},
		{url: "http://198.18.0.1/"},
		{url: "http://224.0.0.1/"},
		{url: "http://255.255.255.255/"},
		{url: "http://169.254.169.254.nip.io/"},
		{url: "https://api.example.com@169.254.169.254/v1/"},
		{url: "https://169.254.169.254@api.example.com/v1/"},
		{url: "https://api.example.com:443@127.0.0.1:8080/v1/"},
		{url: "https://api.example.com.evil.test/v1/"},
		{url: "https://api.example.com/v1/../admin", invalid: true},
		{url: "https://api.example.com/v1/%2e%2e/admin", invalid: true},
		{url: "https://api.example.com/v1/..%2fadmin", invalid: true},
		{url: "https://api.example.com/v1\\..\\admin", invalid: true},
		{url: "http://0x7f.1.1.1.1/", invalid: true},
		{url: "http://256.1/", invalid: true},
		{url: "http://[::ffff:999.1.1.1]/", invalid: true},
		{url: "gopher://127.0.0.1:8080/", invalid: true},
		{url: "file:///etc/passwd", invalid: true},
		{url: "ftp://api.example.com/v1/", invalid: true},
		{url: "//api.example.com/v1/", invalid: true},
		{url: "http:127.0.0.1:8080", invalid: true},
		{url: "http://%31%32%37.0.0.1/", invalid: true},
	}
	for _, v := range vectors {
		t.Run(v.url, func(t *testing.T) {
			_, _, err := p.Check("GET", v.url)
			want := ErrDenied
			if v.invalid {
				want = ErrInvalid
			}
			if !errors.Is(err, want) {
				t.Fatalf("Check(GET %s) = %v; want %v", v.url, err, want)
			}
		})
	}
	// The same server through its grant is allowed, so the vectors are
	// refused for what they are, not because nothing is allowed.
	for _, ok := range []string{"http://127.0.0.1:8080/", "https://api.example.com/v1/x", "http://a.cdn.example.net/"} {
		if _, _, err := p.Check("GET", ok); err != nil {
			t.Errorf("Check(GET %s) = %v; want allowed", ok, err)
		}
	}
}

func TestPolicy_noGrants(t *testing.T) {
	var p *Policy
	_, _, err := p.Check("GET", "https://example.com/")
	if !errors.Is(err, ErrDenied) || !strings.Contains(err.Error(), "no HTTP grants") {
		t.Fatalf("nil policy: %v", err)
	}
	if p2, err := NewPolicy(); p2 != nil || err != nil {
		t.Fatalf("NewPolicy() = %v, %v; want nil, nil", p2, err)
	}
}

func TestPolicy_denialSuggestsGrant(t *testing.T) {
	p := ssrfPolicy(t)
	_, _, err := p.Check("DELETE", "https://api.example.com/v1/x")
	if err == nil {
		t.Fatal("allowed")
	}
	for _, want := range []string{"grant api allows methods GET,POST, not DELETE", "--allow-http 'DELETE https://api.example.com:443/v1/x'", "api: GET,POST https://api.example.com:443/v1/", "local: GET,HEAD http://127.0.0.1:8080/"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("denial %q does not contain %q", err, want)
		}
	}
}

func TestNewPolicy_invalid(t *testing.T) {
	tests := []struct {
		name  string
		grant Grant
		field string
	}{
		{"no name", Grant{Host: "a.example"}, "name"},
		{"bad name", Grant{Name: "a b", Host: "a.example"}, "name"},
		{"no host", Grant{Name: "g"}, "host"},
		{"scheme", Grant{Name: "g", Host: "a.example", Scheme: "ftp"}, "scheme"},
		{"star in the middle", Grant{Name: "g", Host: "a.*.example"}, "host"},
		{"bare star", Grant{Name: "g", Host: "*"}, "host"},
		{"star on an address", Grant{Name: "g", Host: "*.127.0.0.1"}, "host"},
		{"loopback without range", Grant{Name: "g", Host: "127.0.0.1"}, "host"},
		{"metadata without range", Grant{Name: "g", Host: "169.254.169.254"}, "host"},
		{"range not covering the host", Grant{Name: "g", Host: "127.0.0.1", AllowRanges: prefixes("10.0.0.0/8")}, "host"},
		{"lower-case method", Grant{Name: "g", Host: "a.example", Methods: []string{"get"}}, "methods"},
		{"CONNECT", Grant{Name: "g", Host: "a.example", Methods: []string{"CONNECT"}}, "methods"},
		{"relative path", Grant{Name: "g", Host: "a.example", Paths: []string{"v1"}}, "paths"},
		{"dot segment", Grant{Name: "g", Host: "a.example", Paths: []string{"/v1/../"}}, "paths"},
		{"query in path", Grant{Name: "g", Host: "a.example", Paths: []string{"/v1?x"}}, "paths"},
		{"host bits", Grant{Name: "g", Host: "a.example", AllowRanges: prefixes("10.0.0.1/8")}, "allow_ranges"},
		{"redirects", Grant{Name: "g", Host: "a.example", Redirects: 21}, "redirects"},
		{"negative timeout", Grant{Name: "g", Host: "a.example", TotalTimeout: -1}, "total_timeout"},
		{"negative body", Grant{Name: "g", Host: "a.example", MaxResponseBody: -1}, "max_response_body"},
		{"negative concurrency", Grant{Name: "g", Host: "a.example", MaxConcurrent: -1}, "max_concurrent"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewPolicy(tc.grant)
			var ge *GrantError
			if !errors.Is(err, ErrInvalidGrant) || !errors.As(err, &ge) || ge.Field != tc.field {
				t.Fatalf("NewPolicy(%+v) = %v; want an invalid %s", tc.grant, err, tc.field)
			}
		})
	}
	_, err := NewPolicy(Grant{Name: "g", Host: "a.example"}, Grant{Name: "g", Host: "b.example"})
	if !errors.Is(err, ErrInvalidGrant) {
		t.Fatalf("duplicate names: %v", err)
	}
}

func TestNewPolicy_defaults(t *testing.T) {
	p := mustPolicy(t, Grant{Name: "g", Host: "a.example"}, Grant{Name: "h", Scheme: "HTTP", Host: "b.example"})
	g := p.Grants()
	if g[0].Scheme != "https" || g[0].Port != 443 || g[1].Scheme != "http" || g[1].Port != 80 {
		t.Errorf("scheme/port defaults: %+v", g)
	}
	want := Grant{Name: "g", Scheme: "https", Host: "a.example", Port: 443, Methods: []string{"GET", "HEAD"}, Paths: []string{"/"},
		ConnectTimeout: DefaultConnectTimeout, TLSTimeout: DefaultTLSTimeout, HeaderTimeout: DefaultHeaderTimeout, TotalTimeout: DefaultTotalTimeout,
		MaxRequestBody: DefaultMaxRequestBody, MaxResponseBody: DefaultMaxResponseBody, MaxHeaderBytes: DefaultMaxHeaderBytes, MaxConcurrent: DefaultMaxConcurrent}
	got := g[0]
	if got.Name != want.Name || got.Scheme != want.Scheme || got.Port != want.Port || strings.Join(got.Methods, ",") != "GET,HEAD" ||
		strings.Join(got.Paths, ",") != "/" || got.ConnectTimeout != want.ConnectTimeout || got.TLSTimeout != want.TLSTimeout ||
		got.HeaderTimeout != want.HeaderTimeout || got.TotalTimeout != want.TotalTimeout || got.MaxRequestBody != want.MaxRequestBody ||
		got.MaxResponseBody != want.MaxResponseBody || got.MaxHeaderBytes != want.MaxHeaderBytes || got.MaxConcurrent != want.MaxConcurrent ||
		got.Redirects != 0 || len(got.AllowRanges) != 0 {
		t.Errorf("defaults:\n got %+v\nwant %+v", got, want)
	}
}

// FuzzCheck feeds arbitrary URLs to the decision: it must not panic, and
// whatever it allows must be a target of one of the grants.
func FuzzCheck(f *testing.F) {
	for _, s := range []string{"http://127.0.0.1:8080/", "https://api.example.com/v1/x", "http://a.cdn.example.net/", "http://0x7f.1/", "https://a@b/", "http://[::ffff:127.0.0.1]:8080/"} {
		f.Add("GET", s)
	}
	p := ssrfPolicy(f)
	f.Fuzz(func(t *testing.T, method, raw string) {
		name, target, err := p.Check(method, raw)
		if err != nil {
			var e *Error
			if !errors.As(err, &e) || !(errors.Is(err, ErrDenied) || errors.Is(err, ErrInvalid)) {
				t.Fatalf("Check(%q, %q) = %v; want a denied or invalid *Error", method, raw, err)
			}
			return
		}
		if target.IP.IsValid() {
			if err := p.CheckAddr(name, target.IP); err != nil {
				t.Fatalf("Check(%q, %q) allowed address %s that CheckAddr denies: %v", method, raw, target.IP, err)
			}
		}
		switch name {
		case "api":
			if target.Host != "api.example.com" || target.Scheme != "https" || !strings.HasPrefix(target.Path, "/v1/") {
				t.Fatalf("Check(%q, %q) allowed %+v under api", method, raw, target)
			}
		case "cdn":
			if !strings.HasSuffix(target.Host, ".cdn.example.net") || target.Port != 80 {
				t.Fatalf("Check(%q, %q) allowed %+v under cdn", method, raw, target)
			}
		case "local":
			if target.IP != netip.MustParseAddr("127.0.0.1") || target.Port != 8080 {
				t.Fatalf("Check(%q, %q) allowed %+v under local", method, raw, target)
			}
		default:
			t.Fatalf("Check(%q, %q) allowed by unknown grant %q", method, raw, name)
		}
	})
}
