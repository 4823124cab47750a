//go:build !wasip1

package sdktest

import (
	"fmt"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
)

// HTTPGrant allows a family of requests, as a grant of the block's
// manifest does (`http { grant "NAME" { … } }`, docs/capabilities.md). A
// request is allowed when its scheme, host, port, method and path all
// match one grant; the fields and their defaults are the host's.
type HTTPGrant struct {
	// Name identifies the grant in errors and in the response head.
	// Default "sdktest".
	Name string
	// Scheme is "http" or "https". Default "https".
	Scheme string
	// Host is an exact name ("api.example.com"), a wildcard matching any
	// name below a suffix ("*.example.com" matches a.example.com, not
	// example.com), or an IP address. Required.
	Host string
	// Port is the one port allowed. Default 443 for https, 80 for http.
	Port uint16
	// Methods are the allowed methods, upper case. Default GET and HEAD.
	Methods []string
	// Paths are the allowed path prefixes, matched at a segment boundary:
	// "/v1" matches /v1 and /v1/x, not /v10. Default "/", every path.
	Paths []string
	// AllowRanges are the special-purpose address ranges (loopback,
	// private, link-local, …) a URL naming an IP address may reach.
	// Default none: a URL such as http://127.0.0.1/ is denied, as on the
	// host.
	AllowRanges []netip.Prefix
}

// grantRule is an HTTPGrant with its defaults applied.
type grantRule struct {
	HTTPGrant
	ip netip.Addr // when Host is an IP address
}

// compileGrants applies the grants' defaults and reports the first that
// the host would refuse to load.
func compileGrants(grants []HTTPGrant) ([]grantRule, error) {
	out := make([]grantRule, 0, len(grants))
	for i, g := range grants {
		r := grantRule{HTTPGrant: g}
		if r.Name == "" {
			r.Name = "sdktest"
			if len(grants) > 1 {
				r.Name += strconv.Itoa(i)
			}
		}
		bad := func(format string, args ...any) error {
			return fmt.Errorf("sdktest: HTTP grant %q: %s", r.Name, fmt.Sprintf(format, args...))
		}
		switch r.Scheme = strings.ToLower(g.Scheme); r.Scheme {
		case "":
			r.Scheme = "https"
		case "http", "https":
		default:
			return nil, bad("scheme %q is not http or https", g.Scheme)
		}
		host := strings.ToLower(strings.TrimSuffix(strings.TrimPrefix(g.Host, "["), "]"))
		switch {
		case host == "":
			return nil, bad("a host is required")
		case strings.Contains(strings.TrimPrefix(host, "*."), "*"):
			return nil, bad("host %q: a wildcard must be a whole leading label, as in *.example.com", g.Host)
		}
		r.Host = host
		if ip, err := netip.ParseAddr(host); err == nil {
			r.ip = ip
		}
		if r.Port == 0 {
			r.Port = 443
			if r.Scheme == "http" {
				r.Port = 80
			}
		}
		if len(r.Methods) == 0 {
			r.Methods = []string{"GET", "HEAD"}
		}
		if len(r.Paths) == 0 {
			r.Paths = []string{"/"}
		}
		for _, p := range r.Paths {
			if !strings.HasPrefix(p, "/") {
				return nil, bad("path %q must start with /", p)
			}
		}
		out = append(out, r)
	}
	return out, nil
}

// matchGrant returns the grant that allows method to u, or the reason
// none does, in the host's words.
func matchGrant(rules []grantRule, method string, u *url.URL) (*grantRule, string) {
	if len(rules) == 0 {
		return nil, "no HTTP grants: this step may not use the network (sdktest.Config.HTTPGrants is empty)"
	}
	scheme, host := strings.ToLower(u.Scheme), strings.ToLower(u.Hostname())
	ip, _ := netip.ParseAddr(host)
	port := uint16(443)
	if scheme == "http" {
		port = 80
	}
	if p := u.Port(); p != "" {
		n, err := strconv.ParseUint(p, 10, 16)
		if err != nil || n == 0 {
			return nil, fmt.Sprintf("port %q is not between 1 and 65535", p)
		}
		port = uint16(n)
	}
	path := u.Path
	if path == "" {
		path = "/"
	}
	best, bestScore := "", -1
	for i := range rules {
		r := &rules[i]
		why, score := r.mismatch(method, scheme, host, ip, port, path)
		if why == "" {
			if ip.IsValid() && special(ip) && !slices.ContainsFunc(r.AllowRanges, func(p netip.Prefix) bool { return p.Contains(ip) }) {
				return nil, fmt.Sprintf("address %s is in a special-purpose range, which grant %s does not list in AllowRanges", ip, r.Name)
			}
			return r, ""
		}
		if score > bestScore {
			best, bestScore = why, score
		}
	}
	return nil, "no grant allows it (" + best + ")"
}

// mismatch says why r does not allow the request, comparing fields in the
// host's order, or "" when it does; score counts the fields that matched.
func (r *grantRule) mismatch(method, scheme, host string, ip netip.Addr, port uint16, path string) (string, int) {
	switch {
	case scheme != r.Scheme:
		return fmt.Sprintf("grant %s allows scheme %s, not %s", r.Name, r.Scheme, scheme), 0
	case !r.matchHost(host, ip):
		return fmt.Sprintf("grant %s allows host %s, not %s", r.Name, r.Host, host), 1
	case port != r.Port:
		return fmt.Sprintf("grant %s allows port %d, not %d", r.Name, r.Port, port), 2
	case !slices.Contains(r.Methods, method):
		return fmt.Sprintf("grant %s allows methods %s, not %s", r.Name, strings.Join(r.Methods, ","), method), 3
	case !slices.ContainsFunc(r.Paths, func(prefix string) bool { return underPrefix(prefix, path) }):
		return fmt.Sprintf("grant %s allows paths %s, not %s", r.Name, strings.Join(r.Paths, ", "), path), 4
	}
	return "", 5
}

func (r *grantRule) matchHost(host string, ip netip.Addr) bool {
	switch {
	case r.ip.IsValid():
		return ip.IsValid() && ip.Unmap() == r.ip.Unmap()
	case ip.IsValid():
		return false
	case strings.HasPrefix(r.Host, "*."):
		return strings.HasSuffix(host, r.Host[1:]) && len(host) > len(r.Host)-1
	}
	return strings.TrimSuffix(host, ".") == r.Host
}

// underPrefix reports whether path is prefix or below it at a segment
// boundary.
func underPrefix(prefix, path string) bool {
	return strings.HasPrefix(path, prefix) &&
		(len(path) == len(prefix) || strings.HasSuffix(prefix, "/") || path[len(prefix)] == '/')
}

// special reports whether ip is outside public unicast space: loopback,
// private, link-local, unspecified, multicast. The host's list of ranges
// (docs/capabilities.md) is longer; these are the ones a test reaches.
func special(ip netip.Addr) bool {
	ip = ip.Unmap()
	return !ip.IsGlobalUnicast() || ip.IsPrivate() || ip.IsLoopback() ||
		netip.MustParsePrefix("100.64.0.0/10").Contains(ip) || netip.MustParsePrefix("0.0.0.0/8").Contains(ip)
}
