package httpcap

import (
	"net/netip"
	"testing"
)

func TestParseHost_spellings(t *testing.T) {
	tests := []struct {
		host string
		name string // want a DNS name
		ip   string // want an address
		bad  bool
	}{
		{host: "api.example.com", name: "api.example.com"},
		{host: "API.Example.COM.", name: "api.example.com"},
		{host: "under_score.example", name: "under_score.example"},
		{host: "127.0.0.1", ip: "127.0.0.1"},
		{host: "127.0.0.1.", ip: "127.0.0.1"},
		{host: "127.1", ip: "127.0.0.1"},
		{host: "127.0.1", ip: "127.0.0.1"},
		{host: "2130706433", ip: "127.0.0.1"},
		{host: "0x7f000001", ip: "127.0.0.1"},
		{host: "0X7F.1", ip: "127.0.0.1"},
		{host: "0x7f.0.0.1", ip: "127.0.0.1"},
		{host: "017700000001", ip: "127.0.0.1"},
		{host: "0177.0.0.1", ip: "127.0.0.1"},
		{host: "0177.1", ip: "127.0.0.1"},
		{host: "0", ip: "0.0.0.0"},
		{host: "0.0.0.0", ip: "0.0.0.0"},
		{host: "2852039166", ip: "169.254.169.254"},
		{host: "0xa9fea9fe", ip: "169.254.169.254"},
		{host: "0251.0376.0251.0376", ip: "169.254.169.254"},
		{host: "169.254.43518", ip: "169.254.169.254"},
		{host: "::1", ip: "::1"},
		{host: "::ffff:127.0.0.1", ip: "::ffff:127.0.0.1"},
		{host: "0:0:0:0:0:ffff:7f00:1", ip: "::ffff:127.0.0.1"},
		{host: "fe80::1%eth0", ip: "fe80::1%eth0"},
		{host: "", bad: true},
		{host: "256.0.0.1", bad: true},               // numeric, but no address
		{host: "1.2.3.4.5", bad: true},               // numeric, five parts
		{host: "08.0.0.1", bad: true},                // octal with an 8
		{host: "127.0.0.0x1g", name: "127.0.0.0x1g"}, // last label not a number: a name
		{host: "4294967296", bad: true},              // 2^32
		{host: "example.123", bad: true},             // ends in a number
		{host: "exa mple.com", bad: true},            // space
		{host: "bücher.example", bad: true},          // not ASCII
		{host: "a..b", bad: true},                    // empty label
		{host: "[::1]", bad: true},                   // brackets are the URL's
		{host: "::ffff:999.0.0.1", bad: true},        // bad IPv6
		{host: "xn--bcher-kva.example", name: "xn--bcher-kva.example"},
	}
	for _, tc := range tests {
		t.Run(tc.host, func(t *testing.T) {
			name, ip, err := ParseHost(tc.host)
			switch {
			case tc.bad:
				if err == nil {
					t.Fatalf("ParseHost(%q) = %q, %v; want an error", tc.host, name, ip)
				}
			case tc.ip != "":
				if err != nil || ip != netip.MustParseAddr(tc.ip) || name != "" {
					t.Fatalf("ParseHost(%q) = %q, %v, %v; want address %s", tc.host, name, ip, err, tc.ip)
				}
			case tc.name != "":
				if err != nil || name != tc.name || ip.IsValid() {
					t.Fatalf("ParseHost(%q) = %q, %v, %v; want name %s", tc.host, name, ip, err, tc.name)
				}
			}
		})
	}
}

func TestSpecialRange(t *testing.T) {
	tests := []struct {
		ip    string
		name  string // "" for public
		extra string
	}{
		{"0.0.0.0", "this-network", ""},
		{"0.1.2.3", "this-network", ""},
		{"10.1.2.3", "private", ""},
		{"100.64.0.1", "shared address space (CGNAT)", ""},
		{"100.127.255.255", "shared address space (CGNAT)", ""},
		{"127.0.0.1", "loopback", ""},
		{"127.255.255.254", "loopback", ""},
		{"169.254.169.254", "link-local (cloud metadata)", ""},
		{"169.254.1.1", "link-local", ""},
		{"172.16.0.1", "private", ""},
		{"172.31.255.255", "private", ""},
		{"192.0.0.8", "IETF protocol assignments", ""},
		{"192.0.2.1", "documentation (TEST-NET-1)", ""},
		{"192.88.99.1", "6to4 relay anycast", ""},
		{"192.168.0.1", "private", ""},
		{"198.18.0.1", "benchmarking", ""},
		{"198.19.255.255", "benchmarking", ""},
		{"198.51.100.7", "documentation (TEST-NET-2)", ""},
		{"203.0.113.9", "documentation (TEST-NET-3)", ""},
		{"224.0.0.1", "multicast", ""},
		{"239.255.255.250", "multicast", ""},
		{"240.0.0.1", "reserved", ""},
		{"255.255.255.255", "broadcast", ""},
		{"::", "unspecified", ""},
		{"::1", "loopback", ""},
		{"::ffff:127.0.0.1", "IPv4-mapped", ""},
		{"::ffff:8.8.8.8", "IPv4-mapped", ""},
		{"::127.0.0.1", "IPv4-compatible (deprecated)", ""},
		{"64:ff9b::a9fe:a9fe", "NAT64", ""},
		{"64:ff9b:1::1", "NAT64 (local)", ""},
		{"100::1", "discard-only", ""},
		{"2001::1", "Teredo", ""},
		{"2001:2::1", "benchmarking", ""},
		{"2001:db8::1", "documentation", ""},
		{"2002:a9fe:a9fe::1", "6to4", ""},
		{"3fff::1", "documentation", ""},
		{"fc00::1", "unique local (private)", ""},
		{"fd12:3456::1", "unique local (private)", ""},
		{"fe80::1", "link-local", ""},
		{"fec0::1", "site-local (deprecated)", ""},
		{"ff02::1", "multicast", ""},
		{"fe80::1%eth0", "scoped (zone eth0)", ""},
		// Public.
		{"8.8.8.8", "", ""},
		{"93.184.216.34", "", ""},
		{"100.63.255.255", "", ""},
		{"100.128.0.0", "", ""},
		{"172.32.0.1", "", ""},
		{"192.0.3.1", "", ""},
		{"2606:4700::1111", "", ""},
		{"2001:4860::8888", "", ""},
	}
	for _, tc := range tests {
		name, special := SpecialRange(netip.MustParseAddr(tc.ip))
		if name != tc.name || special != (tc.name != "") {
			t.Errorf("SpecialRange(%s) = %q, %v; want %q", tc.ip, name, special, tc.name)
		}
	}
	if name, special := SpecialRange(netip.Addr{}); !special || name != "invalid" {
		t.Errorf("SpecialRange(invalid) = %q, %v", name, special)
	}
}

// FuzzParseHost checks that whatever ParseHost accepts is either an
// address or a lower-case name that cannot be read as a number, so the
// dialer never resolves a spelling of an address as a name.
func FuzzParseHost(f *testing.F) {
	for _, s := range []string{"127.1", "0x7f.1", "0177.0.0.1", "2130706433", "a.example", "::ffff:1.2.3.4", "example.123", "1.2.3.4.5", "0x", "0.0x0.0"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, host string) {
		name, ip, err := ParseHost(host)
		if err != nil {
			return
		}
		if ip.IsValid() == (name != "") {
			t.Fatalf("ParseHost(%q) = %q, %v: want exactly one of name and address", host, name, ip)
		}
		if name != "" {
			if _, ok := parseIPv4(name); ok {
				t.Fatalf("ParseHost(%q) returned name %q, which reads as an address", host, name)
			}
			if _, err := netip.ParseAddr(name); err == nil {
				t.Fatalf("ParseHost(%q) returned name %q, which is an address", host, name)
			}
			if err := checkName(name); err != nil {
				t.Fatalf("ParseHost(%q) returned invalid name %q: %v", host, name, err)
			}
		}
	})
}
