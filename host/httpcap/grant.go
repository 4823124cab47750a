package httpcap

import (
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Grant allows a family of requests. A request is allowed by a grant when
// its scheme, host, port, method and path all match; a zero field takes
// the default documented next to it. Grants are data: the manifest's
// `http { grant "NAME" { … } }` blocks and the --allow-http flags of
// `blockhost run` both produce them (docs/capabilities.md).
type Grant struct {
	// Name identifies the grant in errors and logs.
	Name string
	// Scheme is "http" or "https". Default "https".
	Scheme string
	// Host is an exact DNS name ("api.example.com"), a wildcard matching
	// any name below a suffix ("*.example.com" matches a.example.com and
	// a.b.example.com, not example.com), or an IP address ("127.0.0.1",
	// "::1"). Required. A wildcard over a public suffix ("*.com",
	// "*.co.uk", "*.github.io": names that belong to unrelated owners) is
	// refused unless AllowBroad is set (PublicSuffixWildcard).
	Host string
	// Port is the one port allowed. Default 443 for https and 80 for http.
	Port uint16
	// Methods are the allowed methods, upper case. Default GET and HEAD.
	Methods []string
	// Paths are the allowed path prefixes. A prefix matches itself and
	// what lies below it at a segment boundary: "/v1" matches /v1 and
	// /v1/x, not /v10; "/v1/" matches /v1/x. Default "/", every path.
	Paths []string
	// AllowRanges are the special-purpose address ranges (see SpecialRange)
	// this grant may reach: an address in one of them is allowed even
	// though it is loopback, private, link-local and so on. Public
	// addresses are always allowed. Default none. A range that holds
	// public addresses too (0.0.0.0/0, ::/0, 10.0.0.0/7) is refused
	// unless AllowBroad is set: it can only mean "every special range",
	// or be a typo (RangeCovers).
	AllowRanges []netip.Prefix
	// AllowBroad accepts a wildcard Host over a public suffix and
	// AllowRanges that hold public addresses. It exists so that such a
	// grant is a decision a reviewer sees in the manifest, never an
	// accident. Default false.
	AllowBroad bool
	// SensitiveHeaders are request header fields, besides Authorization,
	// Cookie and Proxy-Authorization, that carry credentials ("X-Api-Key").
	// They are removed from a redirect hop that goes to another scheme,
	// host or port (see RedirectStripsHeaders). Default none.
	SensitiveHeaders []string
	// Redirects is how many redirects a request allowed by this grant
	// follows; each hop must itself be allowed by a grant. 0, the default,
	// follows none: the 3xx response is returned as it is. At most
	// MaxRedirects.
	Redirects int
	// ConnectTimeout bounds DNS resolution and the TCP connection. Default
	// 10s.
	ConnectTimeout time.Duration
	// TLSTimeout bounds the TLS handshake. Default 10s.
	TLSTimeout time.Duration
	// HeaderTimeout bounds the wait for response headers after the request
	// is sent. Default 30s.
	HeaderTimeout time.Duration
	// TotalTimeout bounds the whole request, the response body included.
	// Default 60s.
	TotalTimeout time.Duration
	// MaxRequestBody caps the request body in bytes. Default 10 MiB.
	MaxRequestBody int64
	// MaxResponseBody caps the response body that is read, in bytes;
	// reading stops there and the response is marked truncated. Default
	// 10 MiB.
	MaxResponseBody int64
	// MaxHeaderBytes caps the request's header fields, and separately the
	// response's, in bytes. Default 64 KiB.
	MaxHeaderBytes int64
	// MaxConcurrent caps the requests of one step this grant allows that
	// are in flight at once, a response whose body is still open included.
	// Default 4.
	MaxConcurrent int
}

// Defaults of a Grant's zero fields.
const (
	DefaultScheme          = "https"
	DefaultConnectTimeout  = 10 * time.Second
	DefaultTLSTimeout      = 10 * time.Second
	DefaultHeaderTimeout   = 30 * time.Second
	DefaultTotalTimeout    = 60 * time.Second
	DefaultMaxRequestBody  = 10 << 20
	DefaultMaxResponseBody = 10 << 20
	DefaultMaxHeaderBytes  = 64 << 10
	DefaultMaxConcurrent   = 4
	// MaxRedirects is the most redirects a grant may allow.
	MaxRedirects = 20
)

// DefaultMethods are the methods of a grant that names none.
var DefaultMethods = []string{"GET", "HEAD"}

// ErrInvalidGrant is matched by every error Validate and NewPolicy return.
var ErrInvalidGrant = errors.New("httpcap: invalid grant")

// GrantError is a grant that cannot be used.
type GrantError struct {
	// Grant is the grant's name.
	Grant string
	// Field is the field at fault, as the manifest spells it ("host",
	// "allow_ranges"), or empty for the grant as a whole.
	Field string
	// Reason says what is wrong.
	Reason string
}

func (e *GrantError) Error() string {
	s := "http grant"
	if e.Grant != "" {
		s += " " + strconv.Quote(e.Grant)
	}
	if e.Field != "" {
		s += ": " + e.Field
	}
	return s + ": " + e.Reason
}

// Is matches ErrInvalidGrant.
func (e *GrantError) Is(target error) bool { return target == ErrInvalidGrant }

// rule is a validated grant with its defaults applied.
type rule struct {
	Grant
	wildcard bool       // Host is "*.suffix"; suffix is ".suffix"
	suffix   string     // lower case, for a wildcard
	name     string     // lower case exact name, when not an IP
	ip       netip.Addr // when Host is an IP address
}

// compile validates g and applies its defaults.
func compile(g Grant) (*rule, error) {
	bad := func(field, format string, args ...any) error {
		return &GrantError{Grant: g.Name, Field: field, Reason: fmt.Sprintf(format, args...)}
	}
	r := &rule{Grant: g}
	if err := ValidateGrantName(g.Name); err != nil {
		return nil, bad("name", "%v", err)
	}
	switch r.Scheme = strings.ToLower(g.Scheme); r.Scheme {
	case "":
		r.Scheme = DefaultScheme
	case "http", "https":
	default:
		return nil, bad("scheme", "%q is not http or https", g.Scheme)
	}
	switch host := g.Host; {
	case host == "":
		return nil, bad("host", "a host is required")
	case strings.HasPrefix(host, "*."):
		name, ip, err := ParseHost(host[2:])
		if err != nil || ip.IsValid() {
			return nil, bad("host", "%q is not a valid wildcard; write *.example.com", host)
		}
		r.wildcard, r.suffix = true, "."+name
	case strings.Contains(host, "*"):
		return nil, bad("host", "%q: a wildcard must be a whole leading label, as in *.example.com", host)
	default:
		name, ip, err := ParseHost(strings.TrimSuffix(strings.TrimPrefix(host, "["), "]"))
		if err != nil {
			return nil, bad("host", "%v", err)
		}
		r.name, r.ip = name, ip
	}
	if r.Port == 0 {
		r.Port = defaultPort(r.Scheme)
	}
	if len(g.Methods) == 0 {
		r.Methods = slices.Clone(DefaultMethods)
	} else {
		r.Methods = make([]string, len(g.Methods))
		for i, m := range g.Methods {
			if err := checkMethod(m); err != nil {
				return nil, bad("methods", "%v", err)
			}
			r.Methods[i] = m
		}
	}
	if len(g.Paths) == 0 {
		r.Paths = []string{"/"}
	} else {
		r.Paths = slices.Clone(g.Paths)
		for _, p := range g.Paths {
			if err := checkPathPrefix(p); err != nil {
				return nil, bad("paths", "%v", err)
			}
		}
	}
	r.AllowRanges = slices.Clone(g.AllowRanges)
	for _, p := range g.AllowRanges {
		if !p.IsValid() {
			return nil, bad("allow_ranges", "invalid address range")
		}
		if p != p.Masked() {
			return nil, bad("allow_ranges", "%s has host bits set; write %s", p, p.Masked())
		}
		if _, public := RangeCovers(p); public && !g.AllowBroad {
			return nil, bad("allow_ranges", "%s holds public addresses, which need no range, and so reaches every special-purpose range it overlaps; "+
				"list only the ranges to reach, such as 127.0.0.1/32, or set allow_broad = true", p)
		}
	}
	if r.wildcard && !g.AllowBroad {
		if suffix, ok := PublicSuffixWildcard(g.Host); ok {
			return nil, bad("host", "%q matches every name under the public suffix %q, which belong to unrelated owners; "+
				"name the hosts, or a wildcard below a registered domain such as *.example.com, or set allow_broad = true", g.Host, suffix)
		}
	}
	r.SensitiveHeaders = make([]string, 0, len(g.SensitiveHeaders))
	for _, h := range g.SensitiveHeaders {
		if !validToken(h) {
			return nil, bad("sensitive_headers", "%q is not a header name", h)
		}
		r.SensitiveHeaders = append(r.SensitiveHeaders, http.CanonicalHeaderKey(h))
	}
	if r.ip.IsValid() {
		if name, special := SpecialRange(r.ip); special && !r.inAllowRanges(r.ip) {
			return nil, bad("host", "%s is in the %s range, which no request reaches unless the grant lists it: add %s to allow_ranges",
				r.ip, name, netip.PrefixFrom(r.ip, r.ip.BitLen()))
		}
	}
	if g.Redirects < 0 || g.Redirects > MaxRedirects {
		return nil, bad("redirects", "%d is not between 0 and %d", g.Redirects, MaxRedirects)
	}
	for _, d := range []struct {
		field string
		v     *time.Duration
		def   time.Duration
	}{
		{"connect_timeout", &r.ConnectTimeout, DefaultConnectTimeout},
		{"tls_timeout", &r.TLSTimeout, DefaultTLSTimeout},
		{"header_timeout", &r.HeaderTimeout, DefaultHeaderTimeout},
		{"total_timeout", &r.TotalTimeout, DefaultTotalTimeout},
	} {
		switch {
		case *d.v < 0:
			return nil, bad(d.field, "%s is negative", *d.v)
		case *d.v == 0:
			*d.v = d.def
		}
	}
	for _, s := range []struct {
		field string
		v     *int64
		def   int64
	}{
		{"max_request_body", &r.MaxRequestBody, DefaultMaxRequestBody},
		{"max_response_body", &r.MaxResponseBody, DefaultMaxResponseBody},
		{"max_header_bytes", &r.MaxHeaderBytes, DefaultMaxHeaderBytes},
	} {
		switch {
		case *s.v < 0:
			return nil, bad(s.field, "%d is negative", *s.v)
		case *s.v == 0:
			*s.v = s.def
		}
	}
	switch {
	case r.MaxConcurrent < 0:
		return nil, bad("max_concurrent", "%d is negative", r.MaxConcurrent)
	case r.MaxConcurrent == 0:
		r.MaxConcurrent = DefaultMaxConcurrent
	}
	return r, nil
}

// Validate reports whether g can be used, as a *GrantError.
func (g Grant) Validate() error {
	_, err := compile(g)
	return err
}

// ValidateGrantName checks a grant's name: 1 to 64 letters, digits, '.',
// '_' and '-'.
func ValidateGrantName(name string) error {
	if name == "" || len(name) > 64 {
		return fmt.Errorf("a grant name has 1 to 64 characters, not %d", len(name))
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
			return fmt.Errorf("grant name %q: use letters, digits, '.', '_' and '-'", name)
		}
	}
	return nil
}

func defaultPort(scheme string) uint16 {
	if scheme == "http" {
		return 80
	}
	return 443
}

// checkMethod accepts an HTTP method token other than CONNECT, which
// would open a tunnel past every check.
func checkMethod(m string) error {
	if m == "" || len(m) > 32 {
		return fmt.Errorf("method %q is empty or too long", m)
	}
	for i := 0; i < len(m); i++ {
		if c := m[i]; !('A' <= c && c <= 'Z') && c != '-' && c != '_' {
			return fmt.Errorf("method %q: write methods in upper case, such as GET", m)
		}
	}
	if m == "CONNECT" {
		return fmt.Errorf("method CONNECT is never allowed")
	}
	return nil
}

// checkPathPrefix accepts an absolute path without dot segments, query,
// fragment or wildcards.
func checkPathPrefix(p string) error {
	if !strings.HasPrefix(p, "/") {
		return fmt.Errorf("path %q must start with /", p)
	}
	if strings.ContainsAny(p, "?#*\\%;") || strings.ContainsFunc(p, func(r rune) bool { return r < 0x21 || r == 0x7f }) {
		return fmt.Errorf("path %q: a path prefix is a plain path, without ?, #, *, ;, \\, %%-escapes, spaces or control characters", p)
	}
	if hasDotSegment(p) {
		return fmt.Errorf("path %q contains a . or .. segment", p)
	}
	return nil
}

// hasDotSegment reports whether a decoded path has a "." or ".." segment,
// also one hidden behind ';' path parameters ("..;x", ".;"), which back
// ends that drop parameters before normalising read as a dot segment.
func hasDotSegment(p string) bool {
	for seg := range strings.SplitSeq(p, "/") {
		seg, _, _ = strings.Cut(seg, ";")
		if seg == "." || seg == ".." {
			return true
		}
	}
	return false
}

// String describes the grant as its --allow-http spec would: "api:
// GET,HEAD https://api.example.com:443/v1/".
func (r *rule) String() string {
	host := r.Host
	if r.ip.Is6() {
		host = "[" + r.ip.String() + "]"
	}
	return fmt.Sprintf("%s: %s %s://%s:%d%s", r.Name, strings.Join(r.Methods, ","), r.Scheme, host, r.Port, strings.Join(r.Paths, "|"))
}

// mismatch says why the target is outside r, or "" when r allows it.
// Fields are compared in order, so the reason is the first that differs;
// score is how many matched before it.
func (r *rule) mismatch(method string, t Target) (reason string, score int) {
	if t.Scheme != r.Scheme {
		return fmt.Sprintf("grant %s allows scheme %s, not %s", r.Name, r.Scheme, t.Scheme), 0
	}
	if !r.matchHost(t) {
		return fmt.Sprintf("grant %s allows host %s, not %s", r.Name, r.Host, t.Host), 1
	}
	if t.Port != r.Port {
		return fmt.Sprintf("grant %s allows port %d, not %d", r.Name, r.Port, t.Port), 2
	}
	if !slices.Contains(r.Methods, method) {
		return fmt.Sprintf("grant %s allows methods %s, not %s", r.Name, strings.Join(r.Methods, ","), method), 3
	}
	if !r.matchPath(t.Path) {
		why := fmt.Sprintf("grant %s allows paths %s, not %s", r.Name, strings.Join(r.Paths, ", "), t.Path)
		if strings.Contains(t.Path, ";") {
			why += " (a path prefix never matches a path with ';' parameters)"
		}
		return why, 4
	}
	return "", 5
}

func (r *rule) matchHost(t Target) bool {
	switch {
	case r.ip.IsValid():
		return t.IP == r.ip
	case t.IP.IsValid():
		return false
	case r.wildcard:
		return strings.HasSuffix(t.Host, r.suffix) && len(t.Host) > len(r.suffix)
	}
	return t.Host == r.name
}

func (r *rule) matchPath(p string) bool {
	if strings.Contains(p, ";") && !slices.Contains(r.Paths, "/") {
		// Back ends disagree on what ';' means in a path — Tomcat and Jetty
		// drop ";params" from each segment, others keep them — so a prefix
		// decided on the text is not the path the back end serves. Under a
		// grant narrower than "/", a path with ';' matches nothing.
		return false
	}
	for _, prefix := range r.Paths {
		if prefixMatch(prefix, p) {
			return true
		}
	}
	return false
}

// prefixMatch reports whether path is prefix or below it at a segment
// boundary.
func prefixMatch(prefix, path string) bool {
	if !strings.HasPrefix(path, prefix) {
		return false
	}
	return len(path) == len(prefix) || strings.HasSuffix(prefix, "/") || path[len(prefix)] == '/'
}

// inAllowRanges reports whether ip is in one of the grant's AllowRanges.
func (r *rule) inAllowRanges(ip netip.Addr) bool {
	for _, p := range r.AllowRanges {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// checkAddr decides whether a request under r may connect to ip: a public
// address, or one in the grant's AllowRanges. An IPv4-mapped IPv6 address
// must pass both as itself and as the IPv4 address it maps to. It returns
// the name of the range that denies ip, or "".
func (r *rule) checkAddr(ip netip.Addr) (deniedRange string) {
	check := func(a netip.Addr) string {
		if r.inAllowRanges(a) {
			return ""
		}
		name, special := SpecialRange(a)
		if special {
			return name
		}
		return ""
	}
	if name := check(ip); name != "" {
		return name
	}
	if ip.Is4In6() {
		return check(ip.Unmap())
	}
	return ""
}
