package httpcap

import (
	"net/netip"
	"strings"

	"golang.org/x/net/publicsuffix"
)

// PublicSuffixWildcard reports whether host is a wildcard ("*.suffix")
// whose suffix is a public suffix — a name under which unrelated owners
// register theirs: "com", "co.uk", and the private-section entries of the
// Public Suffix List such as "github.io". A suffix the list does not know
// is taken as a public suffix when it is a single label ("*.internal"),
// as the list's default rule says. It returns the suffix.
//
// The list is golang.org/x/net/publicsuffix, compiled into the binary:
// the decision needs no network and is the same on every machine running
// the same build.
func PublicSuffixWildcard(host string) (suffix string, ok bool) {
	rest, found := strings.CutPrefix(host, "*.")
	if !found {
		return "", false
	}
	rest = strings.ToLower(strings.TrimSuffix(rest, "."))
	if rest == "" {
		return "", false
	}
	ps, _ := publicsuffix.PublicSuffix(rest)
	return rest, ps == rest
}

// RangeCovers describes what an address range reaches: the names of the
// special-purpose ranges (SpecialRange) it overlaps, most specific first
// and without repeats — those inside p, or else the most specific that
// holds p — and whether p holds any public address as well.
// 127.0.0.0/8 gives ["loopback"], false; 10.0.0.0/7 gives ["private"],
// true; 0.0.0.0/0 names every IPv4 special range, true.
func RangeCovers(p netip.Prefix) (names []string, public bool) {
	if !p.IsValid() {
		return nil, false
	}
	p = p.Masked()
	seen := map[string]bool{}
	for _, r := range specialRanges {
		// Prefixes nest or are disjoint: a range overlapping p lies
		// inside it or holds all of it.
		if r.prefix.Bits() >= p.Bits() && p.Contains(r.prefix.Addr()) && !seen[r.name] {
			seen[r.name] = true
			names = append(names, r.name)
		}
	}
	if len(names) == 0 {
		for _, r := range specialRanges {
			if r.prefix.Overlaps(p) {
				return []string{r.name}, false // the most specific range holding all of p
			}
		}
	}
	return names, holdsPublic(p)
}

// holdsPublic reports whether p holds an address in no special range. It
// splits p in halves until each half lies inside a special range (no
// public address) or overlaps none (all public); the special ranges are
// few, so the recursion is short.
func holdsPublic(p netip.Prefix) bool {
	overlaps := false
	for _, r := range specialRanges {
		if r.prefix.Bits() <= p.Bits() && r.prefix.Contains(p.Addr()) {
			return false // p lies inside r
		}
		if r.prefix.Overlaps(p) {
			overlaps = true
		}
	}
	if !overlaps {
		return true
	}
	lo, hi := halves(p)
	return holdsPublic(lo) || holdsPublic(hi)
}

// halves splits p into its two halves. p is not a single address: a
// single address overlapping a special range lies inside it.
func halves(p netip.Prefix) (netip.Prefix, netip.Prefix) {
	bits := p.Bits() + 1
	lo := netip.PrefixFrom(p.Addr(), bits)
	b := p.Addr().AsSlice()
	i := p.Bits()
	b[i/8] |= 0x80 >> (i % 8)
	hiAddr, _ := netip.AddrFromSlice(b)
	return lo, netip.PrefixFrom(hiAddr, bits)
}
