package httpcap_test

import (
	"errors"
	"fmt"
	"net/netip"

	"github.com/blockhost/blockhost/host/httpcap"
)

// A policy decides, without touching the network, whether a request may
// be sent and which grant allows it.
func ExamplePolicy_Check() {
	p, err := httpcap.NewPolicy(
		httpcap.Grant{Name: "api", Host: "api.example.com", Methods: []string{"GET"}, Paths: []string{"/v1/"}},
		httpcap.Grant{Name: "local", Scheme: "http", Host: "127.0.0.1", Port: 8080,
			AllowRanges: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}},
	)
	if err != nil {
		panic(err)
	}
	for _, url := range []string{
		"https://api.example.com/v1/users",
		"http://0x7f.1:8080/health", // 127.0.0.1, however it is spelled
		"http://169.254.169.254/latest/meta-data/",
		"https://api.example.com/admin",
	} {
		grant, _, err := p.Check("GET", url)
		switch {
		case err == nil:
			fmt.Println("allowed by", grant+":", url)
		case errors.Is(err, httpcap.ErrDenied):
			fmt.Println("denied:", url)
		}
	}
	// Output:
	// allowed by api: https://api.example.com/v1/users
	// allowed by local: http://0x7f.1:8080/health
	// denied: http://169.254.169.254/latest/meta-data/
	// denied: https://api.example.com/admin
}

// The address decision on its own: what the dialer asks before every
// connection.
func ExamplePolicy_CheckAddr() {
	p, _ := httpcap.NewPolicy(httpcap.Grant{Name: "api", Host: "api.example.com"})
	for _, a := range []string{"93.184.216.34", "10.0.0.7", "169.254.169.254", "::ffff:127.0.0.1"} {
		err := p.CheckAddr("api", netip.MustParseAddr(a))
		var e *httpcap.Error
		if errors.As(err, &e) {
			fmt.Printf("%s: denied (%s)\n", a, e.Range)
		} else {
			fmt.Printf("%s: allowed\n", a)
		}
	}
	// Output:
	// 93.184.216.34: allowed
	// 10.0.0.7: denied (private)
	// 169.254.169.254: denied (link-local (cloud metadata))
	// ::ffff:127.0.0.1: denied (IPv4-mapped)
}
