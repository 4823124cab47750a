package audit

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/blockhost/blockhost/host"
	"github.com/blockhost/blockhost/host/fscap"
	"github.com/blockhost/blockhost/host/httpcap"
	"github.com/blockhost/blockhost/host/manifest"
)

// Effect says which way a change moves what a block may do.
type Effect int

const (
	// Neutral: neither grants nor takes away (a name, a retry setting),
	// or cannot be ranked (one host for another: both).
	Neutral Effect = iota
	// Grants: the block may do more, or reach more.
	Grants
	// Revokes: the block may do less.
	Revokes
)

var effectNames = []string{"changes", "grants", "revokes"}

func (e Effect) String() string { return effectNames[e] }

// MarshalText writes the effect's name.
func (e Effect) MarshalText() ([]byte, error) { return []byte(e.String()), nil }

// Change is one difference between two manifests.
type Change struct {
	// Effect is the change's direction.
	Effect Effect `json:"effect"`
	// Where is the part of the manifest, such as `http grant "api"`.
	Where string `json:"where"`
	// Field is the attribute that changed, or empty for a grant added or
	// removed whole.
	Field string `json:"field,omitempty"`
	// Old and New are the values, as the manifest would spell them; empty
	// for one that is absent.
	Old string `json:"old,omitempty"`
	New string `json:"new,omitempty"`
	// Detail says what the change means, for people.
	Detail string `json:"detail,omitempty"`
}

// String formats a change on one line: "+ http grant "api": methods:
// GET → GET,POST (grants POST)". The mark is + for Grants, - for Revokes
// and ~ for Neutral.
func (c Change) String() string {
	mark := map[Effect]string{Grants: "+", Revokes: "-", Neutral: "~"}[c.Effect]
	s := mark + " " + c.Where
	if c.Field != "" {
		s += ": " + c.Field + ": " + orNone(c.Old) + " → " + orNone(c.New)
	}
	if c.Detail != "" {
		s += " (" + c.Detail + ")"
	}
	return s
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}

// Diff compares two manifests and returns every difference in what the
// block may do and how it runs, grants and directories matched by name.
// Environment values are not shown, only that they changed: they may be
// secrets.
func Diff(old, new *manifest.Manifest) []Change {
	d := &differ{}
	d.block(old, new)
	d.env(old.Env, new.Env)
	d.http(old.HTTP, new.HTTP)
	d.fs(old.FS, new.FS)
	d.limits(old.Limits, new.Limits)
	return d.changes
}

type differ struct{ changes []Change }

func (d *differ) add(e Effect, where, field, old, new, detail string) {
	d.changes = append(d.changes, Change{Effect: e, Where: where, Field: field, Old: old, New: new, Detail: detail})
}

// field records a change of one value, when it changed.
func (d *differ) field(e Effect, where, field, old, new, detail string) {
	if old != new {
		d.add(e, where, field, old, new, detail)
	}
}

func (d *differ) block(old, new *manifest.Manifest) {
	d.field(Grants, "block", "module", old.Module, new.Module, "another module runs under these grants")
	switch {
	case old.SHA256 == new.SHA256:
	case new.SHA256 == "":
		d.add(Grants, "block", "sha256", old.SHA256, "", "the pin is gone: any module runs")
	case old.SHA256 == "":
		d.add(Revokes, "block", "sha256", "", new.SHA256, "pinned: only this module runs")
	default:
		d.add(Grants, "block", "sha256", old.SHA256, new.SHA256, "another module is approved")
	}
	d.field(Neutral, "block", "engine", old.Engine, new.Engine, "")
	d.field(Neutral, "block", "args", quoteList(old.Args), quoteList(new.Args), "")
	d.field(Neutral, "block", "name", old.Name, new.Name, "")
}

func quoteList(ss []string) string {
	if ss == nil {
		return ""
	}
	q := make([]string, len(ss))
	for i, s := range ss {
		q[i] = strconv.Quote(s)
	}
	return "[" + strings.Join(q, ", ") + "]"
}

func (d *differ) env(old, new map[string]string) {
	names := map[string]bool{}
	for k := range old {
		names[k] = true
	}
	for k := range new {
		names[k] = true
	}
	sorted := make([]string, 0, len(names))
	for k := range names {
		sorted = append(sorted, k)
	}
	slices.Sort(sorted)
	for _, k := range sorted {
		o, inOld := old[k]
		n, inNew := new[k]
		where := "env " + k
		switch {
		case !inOld:
			d.add(Grants, where, "", "", "", "a new variable")
		case !inNew:
			d.add(Revokes, where, "", "", "", "removed")
		case o != n:
			d.add(Neutral, where, "", "", "", "value changed (not shown)")
		}
	}
}

// DescribeHTTP spells a grant the way --allow-http would, with its
// options.
func DescribeHTTP(g httpcap.Grant) string {
	methods := g.Methods
	if len(methods) == 0 {
		methods = httpcap.DefaultMethods
	}
	scheme := cmpOr(g.Scheme, httpcap.DefaultScheme)
	port := ""
	if g.Port != 0 {
		port = ":" + strconv.Itoa(int(g.Port))
	}
	paths := g.Paths
	if len(paths) == 0 {
		paths = []string{"/"}
	}
	s := fmt.Sprintf("%s %s://%s%s%s", strings.Join(methods, ","), scheme, g.Host, port, strings.Join(paths, "|"))
	if len(g.AllowRanges) > 0 {
		s += " allow_ranges=" + prefixList(g.AllowRanges)
	}
	if g.Redirects > 0 {
		s += " redirects=" + strconv.Itoa(g.Redirects)
	}
	if g.AllowBroad {
		s += " allow_broad=true"
	}
	return s
}

func prefixList(ps []netip.Prefix) string {
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = p.String()
	}
	return strings.Join(s, ",")
}

func (d *differ) http(old, new []httpcap.Grant) {
	byName := func(gs []httpcap.Grant) map[string]httpcap.Grant {
		m := make(map[string]httpcap.Grant, len(gs))
		for _, g := range gs {
			m[g.Name] = g
		}
		return m
	}
	om, nm := byName(old), byName(new)
	for _, g := range old {
		if _, ok := nm[g.Name]; !ok {
			d.add(Revokes, fmt.Sprintf("http grant %q", g.Name), "", "", "", "removed: "+DescribeHTTP(g))
		}
	}
	for _, g := range new {
		o, ok := om[g.Name]
		where := fmt.Sprintf("http grant %q", g.Name)
		if !ok {
			d.add(Grants, where, "", "", "", "added: "+DescribeHTTP(g))
			continue
		}
		d.httpGrant(where, o, g)
	}
}

func (d *differ) httpGrant(where string, o, n httpcap.Grant) {
	d.field(Grants, where, "scheme", cmpOr(o.Scheme, httpcap.DefaultScheme), cmpOr(n.Scheme, httpcap.DefaultScheme), "another origin")
	if o.Host != n.Host {
		e, detail := Grants, "another host"
		switch {
		case strings.HasPrefix(n.Host, "*.") && (n.Host[1:] == "."+o.Host || strings.HasSuffix(o.Host, n.Host[1:])):
			detail = "a wildcard over the old host"
		case strings.HasPrefix(o.Host, "*.") && strings.HasSuffix(n.Host, o.Host[1:]):
			e, detail = Revokes, "one host of the old wildcard"
		}
		d.add(e, where, "host", o.Host, n.Host, detail)
	}
	d.field(Grants, where, "port", portText(o), portText(n), "another origin")
	d.set(where, "methods", orDefault(o.Methods, httpcap.DefaultMethods), orDefault(n.Methods, httpcap.DefaultMethods))
	d.paths(where, orDefault(o.Paths, []string{"/"}), orDefault(n.Paths, []string{"/"}))
	d.ranges(where, o.AllowRanges, n.AllowRanges)
	if o.AllowBroad != n.AllowBroad {
		d.add(boolEffect(n.AllowBroad), where, "allow_broad", strconv.FormatBool(o.AllowBroad), strconv.FormatBool(n.AllowBroad), "")
	}
	// Fewer sensitive headers means more of them follow a redirect.
	if so, sn := canonical(o.SensitiveHeaders), canonical(n.SensitiveHeaders); !slices.Equal(so, sn) {
		e := Neutral
		switch {
		case isSubset(sn, so):
			e = Grants
		case isSubset(so, sn):
			e = Revokes
		}
		d.add(e, where, "sensitive_headers", strings.Join(so, ","), strings.Join(sn, ","), "headers stripped on a redirect to another origin")
	}
	if o.Redirects != n.Redirects { // 0 means none, not a default
		d.add(boolEffect(n.Redirects > o.Redirects), where, "redirects", strconv.Itoa(o.Redirects), strconv.Itoa(n.Redirects), "")
	}
	for _, t := range []struct {
		name          string
		old, new, def time.Duration
	}{
		{"connect_timeout", o.ConnectTimeout, n.ConnectTimeout, httpcap.DefaultConnectTimeout},
		{"tls_timeout", o.TLSTimeout, n.TLSTimeout, httpcap.DefaultTLSTimeout},
		{"header_timeout", o.HeaderTimeout, n.HeaderTimeout, httpcap.DefaultHeaderTimeout},
		{"total_timeout", o.TotalTimeout, n.TotalTimeout, httpcap.DefaultTotalTimeout},
	} {
		d.duration(where, t.name, t.old, t.new, t.def)
	}
	d.number(where, "max_request_body", o.MaxRequestBody, n.MaxRequestBody, httpcap.DefaultMaxRequestBody)
	d.number(where, "max_response_body", o.MaxResponseBody, n.MaxResponseBody, httpcap.DefaultMaxResponseBody)
	d.number(where, "max_header_bytes", o.MaxHeaderBytes, n.MaxHeaderBytes, httpcap.DefaultMaxHeaderBytes)
	d.number(where, "max_concurrent", int64(o.MaxConcurrent), int64(n.MaxConcurrent), httpcap.DefaultMaxConcurrent)
}

func portText(g httpcap.Grant) string {
	if g.Port != 0 {
		return strconv.Itoa(int(g.Port))
	}
	if cmpOr(g.Scheme, httpcap.DefaultScheme) == "http" {
		return "80"
	}
	return "443"
}

func orDefault(v, def []string) []string {
	if len(v) == 0 {
		return def
	}
	return v
}

func canonical(hs []string) []string {
	out := make([]string, len(hs))
	for i, h := range hs {
		out[i] = strings.ToLower(h)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

func isSubset(a, b []string) bool {
	for _, x := range a {
		if !slices.Contains(b, x) {
			return false
		}
	}
	return true
}

func boolEffect(granted bool) Effect {
	if granted {
		return Grants
	}
	return Revokes
}

// set records the elements added to a list (grants) and removed from it
// (revokes).
func (d *differ) set(where, field string, old, new []string) {
	var added, removed []string
	for _, n := range new {
		if !slices.Contains(old, n) {
			added = append(added, n)
		}
	}
	for _, o := range old {
		if !slices.Contains(new, o) {
			removed = append(removed, o)
		}
	}
	ol, nl := strings.Join(old, ","), strings.Join(new, ",")
	if len(added) > 0 {
		d.add(Grants, where, field, ol, nl, "adds "+strings.Join(added, ","))
	}
	if len(removed) > 0 {
		d.add(Revokes, where, field, ol, nl, "removes "+strings.Join(removed, ","))
	}
}

// ranges is set for address ranges, where a range inside an old one
// grants nothing new and one holding an old one revokes nothing.
func (d *differ) ranges(where string, old, new []netip.Prefix) {
	covered := func(p netip.Prefix, by []netip.Prefix) bool {
		for _, b := range by {
			if b.Bits() <= p.Bits() && b.Contains(p.Addr()) {
				return true
			}
		}
		return false
	}
	var wider, narrower []string
	for _, n := range new {
		if !covered(n, old) {
			wider = append(wider, n.String())
		}
	}
	for _, o := range old {
		if !covered(o, new) {
			narrower = append(narrower, o.String())
		}
	}
	ol, nl := prefixList(old), prefixList(new)
	if len(wider) > 0 {
		d.add(Grants, where, "allow_ranges", ol, nl, "reaches "+strings.Join(wider, ","))
	}
	if len(narrower) > 0 {
		d.add(Revokes, where, "allow_ranges", ol, nl, "no longer reaches all of "+strings.Join(narrower, ","))
	}
	if len(wider) == 0 && len(narrower) == 0 && ol != nl {
		d.add(Neutral, where, "allow_ranges", ol, nl, "")
	}
}

// paths is set for path prefixes, where a shorter prefix of an old one
// grants more and a longer one less.
func (d *differ) paths(where string, old, new []string) {
	covered := func(p string, by []string) bool {
		for _, b := range by {
			if b == "/" || p == b || strings.HasPrefix(p, strings.TrimSuffix(b, "/")+"/") {
				return true
			}
		}
		return false
	}
	var wider, narrower []string
	for _, n := range new {
		if !covered(n, old) {
			wider = append(wider, n)
		}
	}
	for _, o := range old {
		if !covered(o, new) {
			narrower = append(narrower, o)
		}
	}
	ol, nl := strings.Join(old, ","), strings.Join(new, ",")
	if len(wider) > 0 {
		d.add(Grants, where, "paths", ol, nl, "reaches "+strings.Join(wider, ","))
	}
	if len(narrower) > 0 {
		d.add(Revokes, where, "paths", ol, nl, "no longer reaches all of "+strings.Join(narrower, ","))
	}
	if len(wider) == 0 && len(narrower) == 0 && ol != nl {
		d.add(Neutral, where, "paths", ol, nl, "")
	}
}

// number records a numeric limit, a zero value read as def, the default
// the host applies: higher grants, lower revokes.
func (d *differ) number(where, field string, old, new, def int64) {
	limit(d, where, field, old, new, def, func(v int64) string { return strconv.FormatInt(v, 10) })
}

func (d *differ) duration(where, field string, old, new, def time.Duration) {
	limit(d, where, field, old, new, def, time.Duration.String)
}

func limit[T int64 | time.Duration](d *differ, where, field string, old, new, def T, format func(T) string) {
	if old == new {
		return
	}
	show := func(v T) string {
		if v == 0 {
			return format(def) + " (default)"
		}
		return format(v)
	}
	o, n := cmp.Or(old, def), cmp.Or(new, def)
	e := Neutral
	switch {
	case n > o:
		e = Grants
	case n < o:
		e = Revokes
	}
	d.add(e, where, field, show(old), show(new), "")
}

func (d *differ) fs(old, new []fscap.Grant) {
	name := func(g fscap.Grant) string { return cmpOr(g.Name, g.GuestPath) }
	om := map[string]fscap.Grant{}
	for _, g := range old {
		om[name(g)] = g
	}
	nm := map[string]bool{}
	for _, g := range new {
		nm[name(g)] = true
	}
	describe := func(g fscap.Grant) string {
		mode := "rw"
		if g.ReadOnly {
			mode = "ro"
		}
		return g.HostDir + ":" + g.GuestPath + ":" + mode
	}
	for _, g := range old {
		if !nm[name(g)] {
			d.add(Revokes, fmt.Sprintf("filesystem dir %q", name(g)), "", "", "", "removed: "+describe(g))
		}
	}
	for _, g := range new {
		where := fmt.Sprintf("filesystem dir %q", name(g))
		o, ok := om[name(g)]
		if !ok {
			d.add(Grants, where, "", "", "", "added: "+describe(g))
			continue
		}
		if o.HostDir != g.HostDir {
			e, detail := Grants, "another host directory"
			switch {
			case within(o.HostDir, g.HostDir):
				detail = "a directory holding the old one"
			case within(g.HostDir, o.HostDir):
				e, detail = Revokes, "a directory inside the old one"
			}
			d.add(e, where, "host", o.HostDir, g.HostDir, detail)
		}
		d.field(Neutral, where, "guest", o.GuestPath, g.GuestPath, "")
		if o.ReadOnly != g.ReadOnly {
			if g.ReadOnly {
				d.add(Revokes, where, "mode", "rw", "ro", "no more writes")
			} else {
				d.add(Grants, where, "mode", "ro", "rw", "may write, create and remove")
			}
		}
		d.number(where, "quota.write_bytes", o.Quota.WriteBytes, g.Quota.WriteBytes, fscap.DefaultQuota.WriteBytes)
		d.number(where, "quota.files", o.Quota.Files, g.Quota.Files, fscap.DefaultQuota.Files)
		d.number(where, "quota.file_size", o.Quota.FileSize, g.Quota.FileSize, fscap.DefaultQuota.FileSize)
		d.duration(where, "timeout", o.Timeout, g.Timeout, fscap.DefaultTimeout)
	}
}

func (d *differ) limits(old, new manifest.Limits) {
	d.duration("limits", "timeout", old.Timeout, new.Timeout, host.DefaultLimits.Timeout)
	d.number("limits", "memory", int64(old.Memory), int64(new.Memory), int64(host.DefaultLimits.Memory))
	d.number("limits", "output", int64(old.Output), int64(new.Output), int64(host.DefaultLimits.Output))
	d.number("limits", "log", int64(old.Log), int64(new.Log), int64(host.DefaultLimits.Log))
}
