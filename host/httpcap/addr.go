package httpcap

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// specialRange is an address range no request reaches unless its grant
// lists the range, or part of it, in AllowRanges.
type specialRange struct {
	prefix netip.Prefix
	name   string
}

// specialRanges are the special-purpose ranges of the IANA IPv4 and IPv6
// registries (RFC 6890 and its updates), and the multicast and reserved
// space besides. Anything not in them is treated as public. More specific
// ranges come first, so an address gets its most precise name.
var specialRanges = func() []specialRange {
	var out []specialRange
	for _, r := range []struct{ cidr, name string }{
		// IPv4.
		{"0.0.0.0/8", "this-network"}, // 0.0.0.0 reaches the local host on many systems
		{"10.0.0.0/8", "private"},
		{"100.64.0.0/10", "shared address space (CGNAT)"},
		{"127.0.0.0/8", "loopback"},
		{"169.254.169.254/32", "link-local (cloud metadata)"},
		{"169.254.0.0/16", "link-local"},
		{"172.16.0.0/12", "private"},
		{"192.0.0.0/24", "IETF protocol assignments"},
		{"192.0.2.0/24", "documentation (TEST-NET-1)"},
		{"192.31.196.0/24", "AS112"},
		{"192.52.193.0/24", "AMT"},
		{"192.88.99.0/24", "6to4 relay anycast"},
		{"192.168.0.0/16", "private"},
		{"192.175.48.0/24", "AS112"},
		{"198.18.0.0/15", "benchmarking"},
		{"198.51.100.0/24", "documentation (TEST-NET-2)"},
		{"203.0.113.0/24", "documentation (TEST-NET-3)"},
		{"224.0.0.0/4", "multicast"},
		{"255.255.255.255/32", "broadcast"},
		{"240.0.0.0/4", "reserved"},
		// IPv6.
		{"::/128", "unspecified"},
		{"::1/128", "loopback"},
		{"::ffff:0:0/96", "IPv4-mapped"},
		{"::/96", "IPv4-compatible (deprecated)"},
		{"64:ff9b::/96", "NAT64"},
		{"64:ff9b:1::/48", "NAT64 (local)"},
		{"100::/64", "discard-only"},
		{"2001::/32", "Teredo"},
		{"2001:2::/48", "benchmarking"},
		{"2001:10::/28", "ORCHID"},
		{"2001:20::/28", "ORCHIDv2"},
		{"2001:db8::/32", "documentation"},
		{"2002::/16", "6to4"},
		{"3fff::/20", "documentation"},
		{"5f00::/16", "segment routing (SRv6)"},
		{"fc00::/7", "unique local (private)"},
		{"fe80::/10", "link-local"},
		{"fec0::/10", "site-local (deprecated)"},
		{"ff00::/8", "multicast"},
	} {
		out = append(out, specialRange{netip.MustParsePrefix(r.cidr), r.name})
	}
	return out
}()

// SpecialRange returns the name of the special-purpose range ip is in,
// such as "loopback" or "link-local (cloud metadata)", and false for a
// public address. An invalid address is reported as "invalid". ip is
// taken as it is: an IPv4-mapped IPv6 address is in the IPv4-mapped range
// whatever it maps to.
func SpecialRange(ip netip.Addr) (string, bool) {
	if !ip.IsValid() {
		return "invalid", true
	}
	if ip.Zone() != "" {
		return "scoped (zone " + ip.Zone() + ")", true
	}
	for _, r := range specialRanges {
		if r.prefix.Contains(ip) {
			return r.name, true
		}
	}
	return "", false
}

// ParseHost reads a URL's host — without port or brackets, as
// url.URL.Hostname returns it — the way the dialer will see it: an IP
// address, or a DNS name to resolve. Numeric IPv4 is read in every form
// inet_aton accepts (decimal, octal with a leading 0, hex with 0x, and
// one to four parts: 2130706433, 0x7f.1, 0177.0.0.1, 127.1); a name is
// lower-cased and loses a trailing dot. A host whose last label is
// numeric must be such an address. Non-ASCII names must be given in their
// ASCII (xn--) form.
func ParseHost(host string) (name string, ip netip.Addr, err error) {
	if host == "" {
		return "", netip.Addr{}, fmt.Errorf("no host")
	}
	if strings.Contains(host, ":") {
		ip, err := netip.ParseAddr(host)
		if err != nil {
			return "", netip.Addr{}, fmt.Errorf("host %q is not a valid IPv6 address", host)
		}
		return "", ip, nil
	}
	h := strings.TrimSuffix(host, ".")
	if ip, ok := parseIPv4(h); ok {
		return "", ip, nil
	}
	labels := strings.Split(h, ".")
	if looksNumeric(labels[len(labels)-1]) {
		return "", netip.Addr{}, fmt.Errorf("host %q ends in a number but is not an IPv4 address", host)
	}
	if err := checkName(h); err != nil {
		return "", netip.Addr{}, err
	}
	return strings.ToLower(h), netip.Addr{}, nil
}

// checkName checks a DNS name: 1 to 253 ASCII bytes, labels of 1 to 63
// letters, digits, hyphens and underscores.
func checkName(h string) error {
	if h == "" || len(h) > 253 {
		return fmt.Errorf("host %q is not a valid DNS name", h)
	}
	for _, label := range strings.Split(h, ".") {
		if label == "" || len(label) > 63 {
			return fmt.Errorf("host %q has an empty or overlong label", h)
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			switch {
			case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '-', c == '_':
			case c >= 0x80:
				return fmt.Errorf("host %q is not ASCII; use its xn-- (punycode) form", h)
			default:
				return fmt.Errorf("host %q contains %q", h, c)
			}
		}
	}
	return nil
}

// looksNumeric reports whether a label is written as a number: decimal
// digits, or 0x followed by hex digits.
func looksNumeric(label string) bool {
	if label == "" {
		return false
	}
	if len(label) >= 2 && label[0] == '0' && (label[1] == 'x' || label[1] == 'X') {
		for i := 2; i < len(label); i++ {
			if !isHex(label[i]) {
				return false
			}
		}
		return true
	}
	for i := 0; i < len(label); i++ {
		if label[i] < '0' || label[i] > '9' {
			return false
		}
	}
	return true
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// parseIPv4 parses s as inet_aton does: one to four parts, each decimal,
// octal (leading 0) or hex (leading 0x); the last part fills the bytes the
// others leave.
func parseIPv4(s string) (netip.Addr, bool) {
	parts := strings.Split(s, ".")
	if len(parts) > 4 {
		return netip.Addr{}, false
	}
	vals := make([]uint64, len(parts))
	for i, p := range parts {
		v, ok := parseIPv4Part(p)
		if !ok {
			return netip.Addr{}, false
		}
		vals[i] = v
	}
	var n uint64
	last := len(vals) - 1
	for i := 0; i < last; i++ {
		if vals[i] > 0xff {
			return netip.Addr{}, false
		}
		n |= vals[i] << (24 - 8*i)
	}
	if vals[last] >= 1<<(32-8*last) {
		return netip.Addr{}, false
	}
	n |= vals[last]
	return netip.AddrFrom4([4]byte{byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)}), true
}

func parseIPv4Part(p string) (uint64, bool) {
	base := 10
	switch {
	case p == "":
		return 0, false
	case len(p) >= 2 && p[0] == '0' && (p[1] == 'x' || p[1] == 'X'):
		base, p = 16, p[2:]
		if p == "" {
			// inet_aton reads a bare "0x" as 0.
			return 0, true
		}
	case len(p) > 1 && p[0] == '0':
		base, p = 8, p[1:]
	}
	for i := 0; i < len(p); i++ {
		if !isHex(p[i]) {
			return 0, false // no signs, spaces or underscores, which ParseUint would allow
		}
	}
	v, err := strconv.ParseUint(p, base, 32)
	return v, err == nil
}
