package httpcap

import (
	"fmt"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
)

// Policy is a validated, immutable set of grants: what one step may send.
// The nil *Policy grants nothing. It is safe for concurrent use and is
// shared by every step it applies to; each step sends through its own
// Session.
type Policy struct {
	rules []*rule
}

// NewPolicy validates grants, applies their defaults and returns the
// policy, or a *GrantError naming the first bad grant. Names must be
// unique. No grants gives a nil policy, which grants nothing.
func NewPolicy(grants ...Grant) (*Policy, error) {
	if len(grants) == 0 {
		return nil, nil
	}
	p := &Policy{}
	seen := map[string]bool{}
	for _, g := range grants {
		r, err := compile(g)
		if err != nil {
			return nil, err
		}
		if seen[g.Name] {
			return nil, &GrantError{Grant: g.Name, Reason: "two grants have this name"}
		}
		seen[g.Name] = true
		p.rules = append(p.rules, r)
	}
	return p, nil
}

// Grants returns the policy's grants with their defaults applied, in
// order.
func (p *Policy) Grants() []Grant {
	if p == nil {
		return nil
	}
	out := make([]Grant, len(p.rules))
	for i, r := range p.rules {
		out[i] = r.Grant
	}
	return out
}

// Target is where a request goes, read as the dialer will read it.
type Target struct {
	// Scheme is "http" or "https".
	Scheme string
	// Host is a lower-case DNS name without a trailing dot, or, when IP is
	// valid, the address in canonical form.
	Host string
	// IP is the address when the URL names one, in whatever spelling.
	IP netip.Addr
	// Port is the URL's port, or the scheme's default.
	Port uint16
	// Path is the decoded path, "/" when the URL has none.
	Path string
}

// ParseURL parses an absolute http or https URL and reads its target.
// The error is an *Error: ErrInvalid for a URL that does not parse, is
// not absolute, has another scheme, a bad port or host, or a path with
// dot segments, backslashes or control characters; ErrDenied for a URL
// with userinfo (user@host), which is never sent.
func ParseURL(raw string) (*url.URL, Target, error) {
	invalid := func(format string, args ...any) (*url.URL, Target, error) {
		return nil, Target{}, newError(ErrInvalid, "", "", fmt.Sprintf(format, args...), nil)
	}
	u, err := url.Parse(raw)
	if err != nil {
		return invalid("%v", err)
	}
	var t Target
	switch t.Scheme = strings.ToLower(u.Scheme); t.Scheme {
	case "http", "https":
	case "":
		return invalid("URL %q is not absolute", raw)
	default:
		return invalid("scheme %q is not http or https", u.Scheme)
	}
	if u.Opaque != "" || u.Host == "" {
		return invalid("URL %q has no host", raw)
	}
	if u.User != nil {
		return nil, Target{}, newError(ErrDenied, "", "", "the URL carries userinfo (user@host); send credentials in a header", nil)
	}
	name, ip, err := ParseHost(u.Hostname())
	if err != nil {
		return invalid("%v", err)
	}
	t.Host, t.IP = name, ip
	if ip.IsValid() {
		t.Host = ip.String()
	}
	switch port := u.Port(); {
	case port != "":
		n, err := strconv.ParseUint(port, 10, 16)
		if err != nil || n == 0 {
			return invalid("port %q is not between 1 and 65535", port)
		}
		t.Port = uint16(n)
	case strings.HasSuffix(u.Host, ":"):
		return invalid("URL %q has an empty port", raw)
	default:
		t.Port = defaultPort(t.Scheme)
	}
	t.Path = u.Path
	if t.Path == "" {
		t.Path = "/"
	}
	if !strings.HasPrefix(t.Path, "/") {
		return invalid("path %q is not absolute", t.Path)
	}
	if hasDotSegment(t.Path) {
		return invalid("path %q has a . or .. segment", t.Path)
	}
	if strings.ContainsFunc(t.Path, func(r rune) bool { return r == '\\' || r < 0x20 || r == 0x7f }) {
		return invalid("path %q contains a backslash or a control character", t.Path)
	}
	u.Fragment, u.RawFragment = "", ""
	return u, t, nil
}

// Match returns the first grant that allows method to t, or an *Error
// matching ErrDenied that names every grant of the policy and says why
// the nearest one does not allow it. It reads no network.
func (p *Policy) Match(method string, t Target) (string, error) {
	r, err := p.match(method, t)
	if err != nil {
		return "", err
	}
	return r.Name, nil
}

func (p *Policy) match(method string, t Target) (*rule, error) {
	if p == nil || len(p.rules) == 0 {
		return nil, &Error{Kind: ErrDenied, Reason: "no HTTP grants: this step may not use the network"}
	}
	best, bestScore := "", -1
	for _, r := range p.rules {
		why, score := r.mismatch(method, t)
		if why == "" {
			return r, nil
		}
		if score > bestScore {
			best, bestScore = why, score
		}
	}
	names := make([]string, len(p.rules))
	for i, r := range p.rules {
		names[i] = r.String()
	}
	host, ranges := t.Host, ""
	if t.IP.Is6() {
		host = "[" + host + "]"
	}
	if _, special := SpecialRange(t.IP); t.IP.IsValid() && special {
		ranges = " allow_ranges=" + netip.PrefixFrom(t.IP.WithZone(""), t.IP.BitLen()).String()
	}
	return nil, &Error{Kind: ErrDenied, Reason: fmt.Sprintf(
		"no grant allows it (%s); grants: %s; a grant allowing it would be --allow-http '%s %s://%s:%d%s%s'",
		best, strings.Join(names, "; "), method, t.Scheme, host, t.Port, t.Path, ranges)}
}

// CheckAddr decides whether a request allowed by the named grant may
// connect to ip. It returns nil, or an *Error matching ErrDenied that
// names the special-purpose range ip is in. Session's dialer calls it for
// every address it would dial; it is exported so the decision can be
// tested, and audited, without a network.
func (p *Policy) CheckAddr(grant string, ip netip.Addr) error {
	if p != nil {
		for _, r := range p.rules {
			if r.Name == grant {
				return addrError(r, ip, "")
			}
		}
	}
	return &Error{Kind: ErrDenied, Reason: fmt.Sprintf("no grant named %q", grant)}
}

// addrError is checkAddr as an *Error. host, when not empty, is the name
// that resolved to ip, for the message.
func addrError(r *rule, ip netip.Addr, host string) error {
	name := r.checkAddr(ip)
	if name == "" {
		return nil
	}
	what := "address " + ip.String() + " is"
	if host != "" {
		what = host + " resolves to " + ip.String() + ","
	}
	return &Error{Kind: ErrDenied, Grant: r.Name, Range: name, Reason: fmt.Sprintf(
		"%s in the %s range, which grant %s does not list in allow_ranges", what, name, r.Name)}
}

// Check is the whole decision for a request before any network: it parses
// rawURL as ParseURL does, finds the grant that allows method to it as
// Match does and, when the URL names an IP address, checks the address as
// CheckAddr does. It returns the grant's name and the target.
func (p *Policy) Check(method, rawURL string) (string, Target, error) {
	r, t, err := p.check(method, rawURL)
	if err != nil {
		return "", Target{}, err
	}
	return r.Name, t, nil
}

func (p *Policy) check(method, rawURL string) (*rule, Target, error) {
	fill := func(err error) error {
		if e, ok := err.(*Error); ok {
			e.Method, e.URL = method, redact(rawURL)
		}
		return err
	}
	if err := checkMethod(method); err != nil {
		return nil, Target{}, fill(newError(ErrInvalid, "", "", err.Error(), nil))
	}
	_, t, err := ParseURL(rawURL)
	if err != nil {
		return nil, Target{}, fill(err)
	}
	r, err := p.match(method, t)
	if err != nil {
		return nil, t, fill(err)
	}
	if t.IP.IsValid() {
		if err := addrError(r, t.IP, ""); err != nil {
			return r, t, fill(err)
		}
	}
	return r, t, nil
}

// redact drops the userinfo and query of a URL for errors and logs, where
// they could carry secrets.
func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		if len(raw) > 200 {
			raw = raw[:200] + "…"
		}
		return strconv.Quote(raw)
	}
	u.User, u.RawQuery, u.ForceQuery, u.Fragment, u.RawFragment = nil, "", false, "", ""
	return u.String()
}
