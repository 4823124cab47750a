package httpcap

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"path"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// TestGrant_broad: allowed/denied pairs for the grants that reach far
// more than they seem to — a wildcard over a public suffix, a range that
// holds public addresses — refused unless the grant says AllowBroad.
func TestGrant_broad(t *testing.T) {
	tests := []struct {
		name  string
		g     Grant
		field string // of the refusal; "" when allowed
	}{
		{"wildcard over com", Grant{Host: "*.com"}, "host"},
		{"wildcard over co.uk", Grant{Host: "*.co.uk"}, "host"},
		{"wildcard over a private-section suffix", Grant{Host: "*.github.io"}, "host"},
		{"wildcard over an unknown TLD", Grant{Host: "*.internal"}, "host"},
		{"wildcard over COM, upper case", Grant{Host: "*.COM"}, "host"},
		{"wildcard below a registered domain", Grant{Host: "*.example.com"}, ""},
		{"wildcard below a registered domain under co.uk", Grant{Host: "*.example.co.uk"}, ""},
		{"exact name", Grant{Host: "com"}, ""},
		{"wildcard over com, allow_broad", Grant{Host: "*.com", AllowBroad: true}, ""},
		{"all IPv4", Grant{Host: "a.example", AllowRanges: prefixes("0.0.0.0/0")}, "allow_ranges"},
		{"all IPv6", Grant{Host: "a.example", AllowRanges: prefixes("::/0")}, "allow_ranges"},
		{"half of IPv4", Grant{Host: "a.example", AllowRanges: prefixes("0.0.0.0/1")}, "allow_ranges"},
		{"private plus public", Grant{Host: "a.example", AllowRanges: prefixes("10.0.0.0/7")}, "allow_ranges"},
		{"global unicast IPv6", Grant{Host: "a.example", AllowRanges: prefixes("2000::/3")}, "allow_ranges"},
		{"private", Grant{Host: "a.example", AllowRanges: prefixes("10.0.0.0/8", "fc00::/7")}, ""},
		{"loopback", Grant{Host: "a.example", AllowRanges: prefixes("127.0.0.0/8", "::1/128")}, ""},
		{"all IPv4, allow_broad", Grant{Host: "a.example", AllowRanges: prefixes("0.0.0.0/0", "::/0"), AllowBroad: true}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.g.Name = "g"
			err := tc.g.Validate()
			if tc.field == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			var ge *GrantError
			if !errors.As(err, &ge) || !errors.Is(err, ErrInvalidGrant) || ge.Field != tc.field {
				t.Fatalf("err = %v; want a GrantError for %s", err, tc.field)
			}
		})
	}
}

func TestRangeCovers(t *testing.T) {
	tests := []struct {
		cidr   string
		names  []string
		public bool
	}{
		{"127.0.0.0/8", []string{"loopback"}, false},
		{"127.0.0.1/32", []string{"loopback"}, false},
		{"169.254.169.254/32", []string{"link-local (cloud metadata)"}, false},
		{"169.254.0.0/16", []string{"link-local (cloud metadata)", "link-local"}, false},
		{"10.0.0.0/7", []string{"private"}, true},
		{"8.8.8.0/24", nil, true},
		{"::1/128", []string{"loopback"}, false},
		{"fc00::/7", []string{"unique local (private)"}, false},
		{"::/0", nil, true}, // names checked below
	}
	for _, tc := range tests {
		names, public := RangeCovers(netip.MustParsePrefix(tc.cidr))
		if public != tc.public || tc.cidr != "::/0" && !reflect.DeepEqual(names, tc.names) {
			t.Errorf("RangeCovers(%s) = %q, %v; want %q, %v", tc.cidr, names, public, tc.names, tc.public)
		}
	}
	names, _ := RangeCovers(netip.MustParsePrefix("0.0.0.0/0"))
	for _, want := range []string{"private", "loopback", "link-local (cloud metadata)", "this-network"} {
		if !strings.Contains(strings.Join(names, ","), want) {
			t.Errorf("0.0.0.0/0 covers %q; want %s among them", names, want)
		}
	}
}

// TestPolicy_pathParameters: ';' path parameters cannot carry a request
// out of a path prefix. A dot segment behind parameters is refused under
// every grant; any ';' is outside every prefix grant narrower than "/".
func TestPolicy_pathParameters(t *testing.T) {
	p := mustPolicy(t,
		Grant{Name: "v1", Host: "api.example.com", Paths: []string{"/v1/"}},
		Grant{Name: "all", Host: "open.example.com"},
	)
	tests := []struct {
		url   string
		kind  error // nil: allowed
		grant string
	}{
		{"https://api.example.com/v1/..;/admin", ErrInvalid, ""},
		{"https://api.example.com/v1/..;x=1/admin", ErrInvalid, ""},
		{"https://api.example.com/v1/.;/x", ErrInvalid, ""},
		{"https://api.example.com/v1/%2e%2e%3b/admin", ErrInvalid, ""},
		{"https://api.example.com/v1/a;b/c", ErrDenied, ""},
		{"https://api.example.com/v1;/admin", ErrDenied, ""},
		{"https://api.example.com/v1/a%3Bb", ErrDenied, ""},
		{"https://api.example.com/v1/a/b", nil, "v1"},
		{"https://open.example.com/x;jsessionid=1/y", nil, "all"},
		{"https://open.example.com/..;/admin", ErrInvalid, ""},
	}
	for _, tc := range tests {
		grant, _, err := p.Check("GET", tc.url)
		if tc.kind == nil {
			if err != nil || grant != tc.grant {
				t.Errorf("%s: %q, %v; want allowed by %s", tc.url, grant, err, tc.grant)
			}
			continue
		}
		if !errors.Is(err, tc.kind) {
			t.Errorf("%s: %v; want %v", tc.url, err, tc.kind)
		}
	}
	if err := (Grant{Name: "g", Host: "a.example", Paths: []string{"/v1;x/"}}).Validate(); !errors.Is(err, ErrInvalidGrant) {
		t.Errorf("a path prefix with ';': %v", err)
	}
}

// TestSession_pathParametersNeverReachTheBackEnd: against a back end that
// drops ';' parameters from each segment before normalising, as Tomcat
// does, /v1/..;/admin under a /v1/ grant would be /admin. The request is
// refused and the back end sees nothing.
func TestSession_pathParametersNeverReachTheBackEnd(t *testing.T) {
	var admin, any atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		any.Add(1)
		segs := strings.Split(r.URL.EscapedPath(), "/")
		for i, s := range segs {
			segs[i], _, _ = strings.Cut(s, ";")
		}
		if path.Clean(strings.Join(segs, "/")) == "/admin" {
			admin.Add(1)
			w.Write([]byte("admin"))
		}
	}))
	defer srv.Close()
	g := serverGrant(t, "v1", srv.URL)
	g.Paths = []string{"/v1/"}
	ts := newTestSession(t, context.Background(), nil, g)

	for _, p := range []string{"/v1/..;/admin", "/v1/..;x/admin", "/v1/%2e%2e;/admin", "/v1/a;/../../admin"} {
		if _, err := do(t, ts, &Request{URL: srv.URL + p}); !errors.Is(err, ErrInvalid) && !errors.Is(err, ErrDenied) {
			t.Errorf("%s: %v; want refused", p, err)
		}
	}
	if any.Load() != 0 || len(ts.dial.dialled()) != 0 {
		t.Errorf("the back end saw %d requests (%d for /admin); dialled %q", any.Load(), admin.Load(), ts.dial.dialled())
	}
	// The pair: a plain path under the grant gets through.
	resp, err := do(t, ts, &Request{URL: srv.URL + "/v1/ok"})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if any.Load() != 1 {
		t.Errorf("back end saw %d requests; want 1", any.Load())
	}
}

// headerRecorder is a loopback server that redirects /to?u=URL and
// records the header fields of every other request, by path.
type headerRecorder struct {
	*httptest.Server
	mu   sync.Mutex
	seen map[string]http.Header
}

func newHeaderRecorder(t *testing.T) *headerRecorder {
	h := &headerRecorder{seen: map[string]http.Header{}}
	h.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/to" {
			http.Redirect(w, r, r.URL.Query().Get("u"), http.StatusFound)
			return
		}
		h.mu.Lock()
		h.seen[r.URL.Path] = r.Header.Clone()
		h.mu.Unlock()
	}))
	t.Cleanup(h.Close)
	return h
}

func (h *headerRecorder) header(p string) http.Header {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.seen[p]
}

// TestSession_redirectStripsCredentials: header fields that carry
// credentials follow a redirect to the same scheme, host and port, and
// never one to another port or another host name — nor, once gone,
// a later hop back. Two loopback servers on two ports; "other.test" is a
// second name for 127.0.0.1 through the session's resolver.
func TestSession_redirectStripsCredentials(t *testing.T) {
	a, b := newHeaderRecorder(t), newHeaderRecorder(t)
	ga := serverGrant(t, "a", a.URL)
	ga.Redirects = 3
	ga.SensitiveHeaders = []string{"x-api-key"}
	gb := serverGrant(t, "b", b.URL)
	gOther := Grant{Name: "other", Scheme: "http", Host: "other.test", Port: ga.Port, AllowRanges: prefixes("127.0.0.1/32"),
		SensitiveHeaders: []string{"X-Other-Key"}}
	res := fakeResolver{"other.test": {"127.0.0.1"}}
	_, portA, _ := net.SplitHostPort(strings.TrimPrefix(a.URL, "http://"))
	otherURL := "http://other.test:" + portA

	secrets := []string{"Authorization", "Cookie", "X-Api-Key", "X-Other-Key"}
	tests := []struct {
		name      string
		start     string // path on a
		land      *headerRecorder
		landPath  string
		keep      bool // the secrets arrive
		keepOther bool // X-Other-Key arrives (only the hop's grant names it)
	}{
		{"same origin", "/to?u=/same", a, "/same", true, true},
		{"another port", "/to?u=" + url.QueryEscape(b.URL+"/port"), b, "/port", false, true},
		{"another host name", "/to?u=" + url.QueryEscape(otherURL+"/name"), a, "/name", false, false},
		{"away and back", "/to?u=" + url.QueryEscape(b.URL+"/to?u="+url.QueryEscape(a.URL+"/back")), a, "/back", false, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ts := newTestSession(t, context.Background(), res, ga, gb, gOther)
			h := http.Header{}
			for _, k := range secrets {
				h.Set(k, "secret-"+k)
			}
			h.Set("X-Trace", "t1")
			resp, err := do(t, ts, &Request{URL: a.URL + tc.start, Header: h})
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			got := tc.land.header(tc.landPath)
			if got == nil {
				t.Fatalf("no request reached %s", tc.landPath)
			}
			if got.Get("X-Trace") != "t1" {
				t.Errorf("X-Trace %q: a header that carries no credentials should follow", got.Get("X-Trace"))
			}
			for _, k := range []string{"Authorization", "Cookie", "X-Api-Key"} {
				if arrived := got.Get(k) != ""; arrived != tc.keep {
					t.Errorf("%s arrived: %v; want %v", k, arrived, tc.keep)
				}
			}
			if arrived := got.Get("X-Other-Key") != ""; arrived != (tc.keep || tc.keepOther) {
				t.Errorf("X-Other-Key arrived: %v", arrived)
			}
			if !tc.keep && got.Get("Referer") != "" {
				t.Errorf("Referer %q went to another origin", got.Get("Referer"))
			}
		})
	}
}

func TestSameOrigin(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		same bool
	}{
		{"http://h.example/a", "http://h.example:80/b", true},
		{"http://H.example/a", "http://h.example./b", true},
		{"http://127.0.0.1/", "http://2130706433/", true},
		{"http://h.example/", "https://h.example/", false},
		{"https://h.example/", "https://h.example:8443/", false},
		{"http://h.example/", "http://g.example/", false},
		{"http://a.h.example/", "http://h.example/", false},
	} {
		a, _ := url.Parse(tc.a)
		b, _ := url.Parse(tc.b)
		if got := sameOrigin(a, b); got != tc.same {
			t.Errorf("sameOrigin(%s, %s) = %v", tc.a, tc.b, got)
		}
	}
}

// TestSession_addressDenialMessages: a name that resolves to a denied
// address is named in the message once, with the address, and a redirect
// hop's denial says it was a redirect.
func TestSession_addressDenialMessages(t *testing.T) {
	srv := newHeaderRecorder(t)
	g := serverGrant(t, "srv", srv.URL)
	g.Redirects = 1
	local := Grant{Name: "local", Scheme: "http", Host: "localhost", Port: g.Port}
	res := fakeResolver{"localhost": {"::1"}}
	ts := newTestSession(t, context.Background(), res, g, local)
	port := strconv.Itoa(int(g.Port))

	_, err := do(t, ts, &Request{URL: "http://localhost:" + port + "/"})
	var e *Error
	if !errors.As(err, &e) || e.Kind != ErrDenied || e.Range != "loopback" || e.Redirect {
		t.Fatalf("err = %#v", err)
	}
	if want := "localhost resolves to ::1, in the loopback range, which grant local does not list in allow_ranges"; e.Reason != want {
		t.Errorf("reason %q\n want %q", e.Reason, want)
	}

	_, err = do(t, ts, &Request{URL: srv.URL + "/to?u=" + url.QueryEscape("http://localhost:"+port+"/")})
	if !errors.As(err, &e) || e.Kind != ErrDenied || e.Range != "loopback" || !e.Redirect || !strings.Contains(e.Error(), ": denied: redirect: localhost resolves to ::1") {
		t.Fatalf("redirect hop: err = %v", err)
	}
	_, err = do(t, ts, &Request{URL: srv.URL + "/to?u=" + url.QueryEscape("http://nowhere.example:"+port+"/")})
	if !errors.As(err, &e) || e.Kind != ErrDenied || !e.Redirect {
		t.Fatalf("redirect hop outside the grants: err = %v", err)
	}
	for _, a := range ts.dial.dialled() {
		if !strings.HasPrefix(a, "127.0.0.1:") {
			t.Errorf("dialled %s", a)
		}
	}
}
