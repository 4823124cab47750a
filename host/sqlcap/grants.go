package sqlcap

import (
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"

	"github.com/blockhost/blockhost/host/capability"
	"github.com/blockhost/blockhost/host/manifest"
)

var (
	_ capability.ManifestSection = Capability{}
	_ capability.FlagGrants      = Capability{}
)

// The manifest's section, inside capabilities { }:
//
//	sql {
//	  database "orders" {
//	    driver    = "postgres"     # or "sqlite", the default
//	    dsn       = "…"            # or dsn_env = "ORDERS_DSN"; one of them
//	    mode      = "ro"           # the default; or "rw"
//	    timeout   = "5s"           # each statement
//	    max_rows  = 1000           # rows one query returns
//	    max_bytes = "1MiB"         # encoded size of one result
//	    max_conns = 4              # the grant's pool
//	  }
//	}
var (
	sectionSchema = &hcl.BodySchema{
		Blocks: []hcl.BlockHeaderSchema{{Type: "database", LabelNames: []string{"name"}}},
	}
	databaseSchema = &hcl.BodySchema{
		Attributes: []hcl.AttributeSchema{
			{Name: "driver"}, {Name: "dsn"}, {Name: "dsn_env"}, {Name: "mode"},
			{Name: "timeout"}, {Name: "max_rows"}, {Name: "max_bytes"}, {Name: "max_conns"},
		},
	}
)

// DecodeSection decodes the manifest's sql section into a *Set. A relative
// SQLite path is joined to the manifest's directory dir. Every problem is a
// diagnostic where it is; a DSN is never quoted in one.
func (Capability) DecodeSection(body hcl.Body, dir string) (any, hcl.Diagnostics) {
	content, diags := body.Content(sectionSchema)
	var grants []Grant
	seen := map[string]hcl.Range{}
	for _, blk := range content.Blocks {
		name := blk.Labels[0]
		if err := ValidName(name); err != nil {
			diags = append(diags, diag(blk.LabelRanges[0], "Invalid database name", err))
			continue
		}
		if first, dup := seen[name]; dup {
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Duplicate database",
				Detail: fmt.Sprintf("The database %q is already granted at %s.", name, first), Subject: blk.LabelRanges[0].Ptr()})
			continue
		}
		seen[name] = blk.LabelRanges[0]
		g, d := decodeDatabase(blk, name, dir)
		diags = append(diags, d...)
		if !d.HasErrors() {
			grants = append(grants, g)
		}
	}
	if diags.HasErrors() {
		return nil, diags
	}
	set, err := NewSet(grants)
	if err != nil {
		return nil, append(diags, diag(body.MissingItemRange(), "Invalid sql section", err))
	}
	return set, diags
}

func decodeDatabase(blk *hcl.Block, name, dir string) (Grant, hcl.Diagnostics) {
	g := Grant{Name: name}
	content, diags := blk.Body.Content(databaseSchema)
	if diags.HasErrors() {
		return g, diags
	}
	str := func(attr string) (string, *hcl.Attribute) {
		a := content.Attributes[attr]
		if a == nil {
			return "", nil
		}
		v, d := a.Expr.Value(nil)
		diags = append(diags, d...)
		if d.HasErrors() {
			return "", nil
		}
		if v.IsNull() || !v.IsKnown() || v.Type() != cty.String {
			diags = append(diags, diag(a.Expr.Range(), "Invalid "+attr, fmt.Errorf("%s must be a string", attr)))
			return "", nil
		}
		return v.AsString(), a
	}
	num := func(attr string) int {
		a := content.Attributes[attr]
		if a == nil {
			return 0
		}
		v, d := a.Expr.Value(nil)
		diags = append(diags, d...)
		if d.HasErrors() {
			return 0
		}
		if v.Type() == cty.String && attr == "max_bytes" {
			n, err := manifest.ParseSize(v.AsString())
			if err != nil || n > MaxMaxBytes {
				diags = append(diags, diag(a.Expr.Range(), "Invalid "+attr, fmt.Errorf("%s must be a size up to 1GiB, such as \"1MiB\"", attr)))
				return 0
			}
			return int(n)
		}
		if v.IsNull() || !v.IsKnown() || v.Type() != cty.Number {
			diags = append(diags, diag(a.Expr.Range(), "Invalid "+attr, fmt.Errorf("%s must be a whole number", attr)))
			return 0
		}
		n, acc := v.AsBigFloat().Int64()
		if acc != 0 || n < 1 || n > 1<<31 {
			diags = append(diags, diag(a.Expr.Range(), "Invalid "+attr, fmt.Errorf("%s must be a whole number from 1", attr)))
			return 0
		}
		return int(n)
	}
	if s, _ := str("driver"); s != "" {
		g.Driver = Driver(s)
	}
	if s, _ := str("mode"); s != "" {
		g.Mode = Mode(s)
	}
	dsn, dsnAttr := str("dsn")
	g.DSNEnv, _ = str("dsn_env")
	if dsnAttr != nil && g.driver() == DriverSQLite && dsn != memoryDSN && dsn != "" && !filepath.IsAbs(dsn) {
		dsn = filepath.Join(dir, dsn)
	}
	g.DSN = Secret(dsn)
	if s, a := str("timeout"); a != nil {
		d, err := time.ParseDuration(s)
		if err != nil {
			diags = append(diags, diag(a.Expr.Range(), "Invalid timeout", fmt.Errorf("timeout must be a duration such as \"5s\"")))
		}
		g.Timeout = d
	}
	g.MaxRows = num("max_rows")
	g.MaxBytes = num("max_bytes")
	g.MaxConns = num("max_conns")
	if diags.HasErrors() {
		return g, diags
	}
	if err := g.Validate(); err != nil {
		rng := blk.DefRange
		if dsnAttr != nil && strings.Contains(err.Error(), "dsn") {
			rng = dsnAttr.Expr.Range()
		}
		diags = append(diags, diag(rng, "Invalid database", err))
	}
	return g, diags
}

func diag(rng hcl.Range, summary string, err error) *hcl.Diagnostic {
	return &hcl.Diagnostic{Severity: hcl.DiagError, Summary: summary, Detail: err.Error(), Subject: rng.Ptr()}
}

// Flag returns --allow-sql.
func (Capability) Flag() (name, usage string) {
	return "allow-sql", "grant a database: `NAME=DRIVER:DSN[:ro|rw]`, such as orders=sqlite:./orders.db " +
		"or orders=postgres:env:ORDERS_DSN:rw (repeatable; the mode defaults to ro; see docs/capabilities.md)"
}

// ParseFlags adds the --allow-sql values to base, the manifest's *Set or
// nil; a value naming a database base grants replaces base's grant. An
// error names the value, never its DSN.
func (Capability) ParseFlags(values []string, base any) (any, error) {
	var grants []Grant
	switch b := base.(type) {
	case nil:
	case *Set:
		grants = b.Grants()
	default:
		return nil, capability.ErrNoGrant
	}
	fromFlags := map[string]bool{}
	for i, v := range values {
		g, err := ParseSpec(v)
		if err != nil {
			return nil, fmt.Errorf("value %d: %w", i+1, err)
		}
		if fromFlags[g.Name] {
			return nil, fmt.Errorf("value %d: database %q is granted twice", i+1, g.Name)
		}
		fromFlags[g.Name] = true
		replaced := false
		for j := range grants {
			if grants[j].Name == g.Name {
				grants[j], replaced = g, true
			}
		}
		if !replaced {
			grants = append(grants, g)
		}
	}
	return NewSet(grants)
}
