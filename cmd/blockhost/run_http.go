package main

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/blockhost/blockhost/host/httpcap"
	"github.com/blockhost/blockhost/host/job"
	"github.com/blockhost/blockhost/host/manifest"
)

// --allow-http adds HTTP grants to every step of run and batch, after the
// manifest's.
func init() {
	registerStepOption(stepOption{
		flags: []cli.Flag{
			&cli.StringSliceFlag{
				Name: "allow-http",
				Usage: "grant HTTP requests: a `SPEC` '[METHODS] URL [OPTION=VALUE...]', such as " +
					"'GET,POST https://api.example.com/v1/*' or " +
					"'http://127.0.0.1:8080/ allow_ranges=127.0.0.1/32' (repeatable; see docs/capabilities.md)",
			},
		},
		apply: applyAllowHTTP,
	})
}

func applyAllowHTTP(c *cli.Context, s *job.Settings) error {
	for i, spec := range c.StringSlice("allow-http") {
		g, err := parseAllowHTTP(spec, i+1)
		if err != nil {
			return usageErrorf("invalid --allow-http %q: %v", spec, err)
		}
		s.HTTP = append(s.HTTP, g)
	}
	if _, err := httpcap.NewPolicy(s.HTTP...); err != nil {
		return usageErrorf("invalid --allow-http: %v", err)
	}
	return nil
}

// parseAllowHTTP reads one --allow-http spec:
//
//	[METHODS] URL [OPTION=VALUE ...]
//
// METHODS is a comma-separated list (default GET,HEAD). URL is
// scheme://host[:port][/path-prefix][*]: host is a name, *.suffix, an IPv4
// address or a bracketed IPv6 one; the path is a prefix, and a trailing *
// only says so. The options are the manifest's grant attributes: name,
// allow_ranges (comma-separated), redirects, connect_timeout, tls_timeout,
// header_timeout, total_timeout, max_request_body, max_response_body,
// max_header_bytes, max_concurrent. The grant is named allow-http-N, the
// Nth flag, unless name= says otherwise.
func parseAllowHTTP(s string, n int) (httpcap.Grant, error) {
	g := httpcap.Grant{Name: "allow-http-" + strconv.Itoa(n)}
	fields := strings.Fields(s)
	if len(fields) == 0 {
		return g, fmt.Errorf("empty spec; want [METHODS] URL [OPTION=VALUE...]")
	}
	if !strings.Contains(fields[0], "://") {
		g.Methods = strings.Split(fields[0], ",")
		fields = fields[1:]
		if len(fields) == 0 {
			return g, fmt.Errorf("no URL after the methods")
		}
	}
	if err := parseGrantURL(fields[0], &g); err != nil {
		return g, err
	}
	for _, opt := range fields[1:] {
		key, value, ok := strings.Cut(opt, "=")
		if !ok || value == "" {
			return g, fmt.Errorf("option %q: want NAME=VALUE", opt)
		}
		if err := setGrantOption(&g, key, value); err != nil {
			return g, fmt.Errorf("option %s: %v", key, err)
		}
	}
	return g, g.Validate()
}

// parseGrantURL reads scheme://host[:port][/path][*] into g. It is not
// url.Parse: the host may be a wildcard, and the port and path are rules,
// not a request.
func parseGrantURL(s string, g *httpcap.Grant) error {
	scheme, rest, ok := strings.Cut(s, "://")
	if !ok {
		return fmt.Errorf("URL %q has no scheme://", s)
	}
	g.Scheme = scheme
	authority, path := rest, ""
	if i := strings.IndexByte(rest, '/'); i >= 0 {
		authority, path = rest[:i], rest[i:]
	}
	if strings.ContainsAny(authority, "@?#") {
		return fmt.Errorf("URL %q: the host part may hold only host[:port]", s)
	}
	host, port := authority, ""
	if strings.HasPrefix(authority, "[") {
		end := strings.IndexByte(authority, ']')
		if end < 0 {
			return fmt.Errorf("URL %q: unclosed [", s)
		}
		host, port = authority[1:end], strings.TrimPrefix(authority[end+1:], ":")
		if port == "" && len(authority) > end+1 {
			return fmt.Errorf("URL %q: empty port", s)
		}
	} else if h, p, ok := strings.Cut(authority, ":"); ok {
		host, port = h, p
		if port == "" {
			return fmt.Errorf("URL %q: empty port", s)
		}
	}
	g.Host = host
	if port != "" {
		n, err := strconv.ParseUint(port, 10, 16)
		if err != nil || n == 0 {
			return fmt.Errorf("port %q is not between 1 and 65535", port)
		}
		g.Port = uint16(n)
	}
	path = strings.TrimSuffix(path, "*")
	if path != "" && path != "/" {
		g.Paths = []string{path}
	}
	return nil
}

func setGrantOption(g *httpcap.Grant, key, value string) error {
	size := func(dst *int64) error {
		n, err := manifest.ParseSize(value)
		if err != nil || n == 0 || n > 1<<40 {
			return fmt.Errorf("%q is not a size from 1 byte to 1TiB, such as 64KiB", value)
		}
		*dst = int64(n)
		return nil
	}
	duration := func(dst *time.Duration) error {
		d, err := time.ParseDuration(value)
		if err != nil || d <= 0 {
			return fmt.Errorf("%q is not a positive duration such as 5s", value)
		}
		*dst = d
		return nil
	}
	integer := func(dst *int, lo, hi int) error {
		n, err := strconv.Atoi(value)
		if err != nil || n < lo || n > hi {
			return fmt.Errorf("%q is not a whole number from %d to %d", value, lo, hi)
		}
		*dst = n
		return nil
	}
	switch key {
	case "name":
		g.Name = value
		return httpcap.ValidateGrantName(value)
	case "allow_ranges":
		for _, r := range strings.Split(value, ",") {
			p, err := netip.ParsePrefix(r)
			if err != nil {
				ip, aerr := netip.ParseAddr(r)
				if aerr != nil {
					return fmt.Errorf("%q is not an address range such as 127.0.0.0/8", r)
				}
				p = netip.PrefixFrom(ip, ip.BitLen())
			}
			g.AllowRanges = append(g.AllowRanges, p)
		}
		return nil
	case "redirects":
		return integer(&g.Redirects, 0, httpcap.MaxRedirects)
	case "connect_timeout":
		return duration(&g.ConnectTimeout)
	case "tls_timeout":
		return duration(&g.TLSTimeout)
	case "header_timeout":
		return duration(&g.HeaderTimeout)
	case "total_timeout":
		return duration(&g.TotalTimeout)
	case "max_request_body":
		return size(&g.MaxRequestBody)
	case "max_response_body":
		return size(&g.MaxResponseBody)
	case "max_header_bytes":
		return size(&g.MaxHeaderBytes)
	case "max_concurrent":
		return integer(&g.MaxConcurrent, 1, 1024)
	case "allow_broad":
		if value != "true" && value != "false" {
			return fmt.Errorf("%q is not true or false", value)
		}
		g.AllowBroad = value == "true"
		return nil
	case "sensitive_headers":
		g.SensitiveHeaders = append(g.SensitiveHeaders, strings.Split(value, ",")...)
		return nil
	}
	return fmt.Errorf("unknown option; the options are name, allow_ranges, redirects, connect_timeout, tls_timeout, " +
		"header_timeout, total_timeout, max_request_body, max_response_body, max_header_bytes, max_concurrent, " +
		"sensitive_headers and allow_broad")
}
