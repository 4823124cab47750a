package manifest

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"

	"github.com/blockhost/blockhost/host/httpcap"
)

// The http section of capabilities:
//
//	http {
//	  grant "api" {
//	    scheme  = "https"
//	    host    = "api.example.com"
//	    methods = ["GET", "POST"]
//	    paths   = ["/v1/"]
//	  }
//	}
//
// Each grant's attributes are httpcap.Grant's fields, named as in
// docs/capabilities.md; the --allow-http flag takes the same names.
var (
	httpSchema = &hcl.BodySchema{
		Blocks: []hcl.BlockHeaderSchema{{Type: "grant", LabelNames: []string{"name"}}},
	}
	httpGrantSchema = &hcl.BodySchema{
		Attributes: []hcl.AttributeSchema{
			{Name: "scheme"}, {Name: "host", Required: true}, {Name: "port"}, {Name: "methods"}, {Name: "paths"},
			{Name: "allow_ranges"}, {Name: "redirects"}, {Name: "allow_broad"}, {Name: "sensitive_headers"},
			{Name: "connect_timeout"}, {Name: "tls_timeout"}, {Name: "header_timeout"}, {Name: "total_timeout"},
			{Name: "max_request_body"}, {Name: "max_response_body"}, {Name: "max_header_bytes"}, {Name: "max_concurrent"},
		},
	}
)

// http decodes the http section into grants, each checked as the host
// will check it, with problems reported at the attribute at fault.
func (d *decoder) http(blk *hcl.Block) []httpcap.Grant {
	content, diags := blk.Body.Content(httpSchema)
	d.diags = append(d.diags, diags...)
	var grants []httpcap.Grant
	seen := map[string]hcl.Range{}
	for _, gb := range content.Blocks {
		name := gb.Labels[0]
		if err := httpcap.ValidateGrantName(name); err != nil {
			d.errorf(gb.LabelRanges[0], "Invalid grant name", "%s.", upper(err.Error()))
			continue
		}
		if first, dup := seen[name]; dup {
			d.errorf(gb.LabelRanges[0], "Duplicate grant", "The grant %q is already defined at %s.", name, at(first))
			continue
		}
		seen[name] = gb.LabelRanges[0]
		if g, ok := d.httpGrant(gb, name); ok {
			grants = append(grants, g)
		}
	}
	return grants
}

func (d *decoder) httpGrant(blk *hcl.Block, name string) (httpcap.Grant, bool) {
	g := httpcap.Grant{Name: name}
	content, diags := blk.Body.Content(httpGrantSchema)
	d.diags = append(d.diags, diags...)
	if diags.HasErrors() {
		return g, false
	}
	before := len(d.diags)
	attrs := content.Attributes
	if a := attrs["scheme"]; a != nil {
		g.Scheme, _ = d.string(a.Expr, "scheme", "scheme")
	}
	if a := attrs["host"]; a != nil {
		g.Host, _ = d.nonEmptyString(a.Expr, "host", "host")
	}
	if a := attrs["port"]; a != nil {
		g.Port = uint16(d.integer(a, 1, 65535))
	}
	if a := attrs["methods"]; a != nil {
		g.Methods = d.stringList(a, "methods", "method")
	}
	if a := attrs["paths"]; a != nil {
		g.Paths = d.stringList(a, "paths", "path")
	}
	if a := attrs["allow_ranges"]; a != nil {
		for i, s := range d.stringList(a, "allow_ranges", "address range") {
			p, err := netip.ParsePrefix(s)
			if err != nil {
				if ip, aerr := netip.ParseAddr(s); aerr == nil {
					p = netip.PrefixFrom(ip, ip.BitLen())
				} else {
					d.errorf(a.Expr.Range(), "Invalid allow_ranges", "Element %d, %q, is not an address range such as \"127.0.0.0/8\" or an address.", i, s)
					continue
				}
			}
			g.AllowRanges = append(g.AllowRanges, p)
		}
	}
	if a := attrs["allow_broad"]; a != nil {
		g.AllowBroad = d.boolean(a)
	}
	if a := attrs["sensitive_headers"]; a != nil {
		g.SensitiveHeaders = d.stringList(a, "sensitive_headers", "header name")
	}
	if a := attrs["redirects"]; a != nil {
		g.Redirects = int(d.integer(a, 0, httpcap.MaxRedirects))
	}
	for _, t := range []struct {
		name string
		dst  *time.Duration
	}{
		{"connect_timeout", &g.ConnectTimeout}, {"tls_timeout", &g.TLSTimeout},
		{"header_timeout", &g.HeaderTimeout}, {"total_timeout", &g.TotalTimeout},
	} {
		if a := attrs[t.name]; a != nil {
			*t.dst = d.duration(a)
		}
	}
	for _, s := range []struct {
		name string
		dst  *int64
	}{
		{"max_request_body", &g.MaxRequestBody}, {"max_response_body", &g.MaxResponseBody}, {"max_header_bytes", &g.MaxHeaderBytes},
	} {
		if a := attrs[s.name]; a != nil {
			*s.dst = int64(min(d.size(a, s.name, 1<<40, "at most 1TiB"), 1<<40))
		}
	}
	if a := attrs["max_concurrent"]; a != nil {
		g.MaxConcurrent = int(d.integer(a, 1, 1024))
	}
	if len(d.diags) > before {
		return g, false
	}
	// What only the whole grant can tell, such as an address host outside
	// allow_ranges, is reported at the attribute it names.
	if err := g.Validate(); err != nil {
		rng, detail := blk.DefRange, err.Error()
		var ge *httpcap.GrantError
		if errors.As(err, &ge) {
			if a := attrs[ge.Field]; a != nil {
				rng = a.Expr.Range()
			}
			detail = fmt.Sprintf("Grant %q: %s: %s", name, ge.Field, ge.Reason)
		}
		d.errorf(rng, "Invalid http grant", "%s.", detail)
		return g, false
	}
	return g, true
}

// stringList decodes a list of strings; what names one element.
func (d *decoder) stringList(a *hcl.Attribute, field, what string) []string {
	elems, diags := hcl.ExprList(a.Expr)
	if diags.HasErrors() {
		d.errorf(a.Expr.Range(), "Invalid "+field, `%s must be a list of strings, such as ["a", "b"].`, field)
		return nil
	}
	out := make([]string, 0, len(elems))
	for _, e := range elems {
		if s, ok := d.nonEmptyString(e, field, "each "+what); ok {
			out = append(out, s)
		}
	}
	return out
}

// boolean decodes true or false.
func (d *decoder) boolean(a *hcl.Attribute) bool {
	s, ok := d.string(a.Expr, a.Name, a.Name)
	if !ok {
		return false
	}
	v, err := strconv.ParseBool(s)
	if err != nil || (s != "true" && s != "false") {
		d.errorf(a.Expr.Range(), "Invalid "+a.Name, "%s must be true or false, not %q.", a.Name, s)
		return false
	}
	return v
}

// integer decodes a whole number between lo and hi.
func (d *decoder) integer(a *hcl.Attribute, lo, hi uint64) uint64 {
	s, ok := d.string(a.Expr, a.Name, a.Name)
	if !ok {
		return 0
	}
	n, err := strconv.ParseUint(strings.TrimSpace(s), 10, 64)
	if err != nil || n < lo || n > hi {
		d.errorf(a.Expr.Range(), "Invalid "+a.Name, "%s must be a whole number from %d to %d, not %q.", a.Name, lo, hi, s)
		return 0
	}
	return n
}

// duration decodes a positive Go duration.
func (d *decoder) duration(a *hcl.Attribute) time.Duration {
	s, ok := d.string(a.Expr, a.Name, a.Name)
	if !ok {
		return 0
	}
	v, err := time.ParseDuration(s)
	if err != nil || v <= 0 {
		d.errorf(a.Expr.Range(), "Invalid "+a.Name,
			`%q is not a positive duration; use Go duration syntax such as "500ms", "5s" or "1m30s".`, s)
		return 0
	}
	return v
}
