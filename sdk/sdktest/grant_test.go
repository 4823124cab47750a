//go:build !wasip1

package sdktest

import (
	"net/netip"
	"net/url"
	"testing"

	"github.com/blockhost/blockhost/host/httpcap"
)

// sdktest decides like the host: every request below gets the same answer
// from the fake host's grant matching as from httpcap.Policy.Check, the
// host's decision before any network. sdktest cannot import httpcap (the
// sdk builds from the standard library alone, and `blockhost init` ships
// it without the host), so this test is what holds the two together.
func TestGrantMatching_sameAsHost(t *testing.T) {
	grants := []HTTPGrant{
		{Name: "api", Host: "api.example.com", Paths: []string{"/v1", "/static/"}},
		{Name: "hooks", Host: "*.hooks.example", Methods: []string{"POST", "PUT"}},
		{Name: "plain", Scheme: "http", Host: "plain.example", Port: 8080},
		{Name: "local", Scheme: "http", Host: "127.0.0.1", AllowRanges: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}},
		{Name: "v6", Host: "::1", AllowRanges: []netip.Prefix{netip.MustParsePrefix("::1/128")}},
	}
	hostGrants := make([]httpcap.Grant, len(grants))
	for i, g := range grants {
		hostGrants[i] = httpcap.Grant{Name: g.Name, Scheme: g.Scheme, Host: g.Host, Port: g.Port,
			Methods: g.Methods, Paths: g.Paths, AllowRanges: g.AllowRanges}
	}
	policy, err := httpcap.NewPolicy(hostGrants...)
	if err != nil {
		t.Fatal(err)
	}
	rules, err := compileGrants(grants)
	if err != nil {
		t.Fatal(err)
	}
	requests := []struct{ method, url string }{
		{"GET", "https://api.example.com/v1"},
		{"GET", "https://api.example.com/v1/"},
		{"GET", "https://api.example.com/v1/a/b?q=1"},
		{"GET", "https://api.example.com/v10"},
		{"GET", "https://api.example.com/"},
		{"GET", "https://api.example.com/static"},
		{"GET", "https://api.example.com/static/x.css"},
		{"HEAD", "https://api.example.com/v1"},
		{"POST", "https://api.example.com/v1"},
		{"GET", "https://API.Example.COM/v1"},
		{"GET", "https://api.example.com:443/v1"},
		{"GET", "https://api.example.com:444/v1"},
		{"GET", "http://api.example.com/v1"},
		{"GET", "https://api.example.com.evil/v1"},
		{"GET", "https://xapi.example.com/v1"},
		{"POST", "https://a.hooks.example/x"},
		{"PUT", "https://a.b.hooks.example/"},
		{"POST", "https://hooks.example/x"},
		{"POST", "https://ahooks.example/x"},
		{"GET", "https://a.hooks.example/x"},
		{"GET", "http://plain.example:8080/"},
		{"GET", "http://plain.example/"},
		{"GET", "https://plain.example:8080/"},
		{"GET", "http://127.0.0.1/"},
		{"GET", "http://127.0.0.1:80/x"},
		{"GET", "http://127.0.0.2/"},
		{"GET", "http://10.1.2.3/"},
		{"GET", "https://[::1]/"},
		{"GET", "https://[::2]/"},
		{"DELETE", "https://api.example.com/v1"},
	}
	for _, r := range requests {
		_, _, hostErr := policy.Check(r.method, r.url)
		u, err := url.Parse(r.url)
		if err != nil {
			t.Fatal(err)
		}
		rule, why := matchGrant(rules, r.method, u)
		if (hostErr == nil) != (rule != nil) {
			t.Errorf("%s %s: host says %v, sdktest says allowed=%v (%s)", r.method, r.url, hostErr, rule != nil, why)
		}
	}
}
