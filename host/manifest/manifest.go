// Package manifest reads block manifests: the HCL file in which an operator
// names a block's WebAssembly module and sets its engine, arguments, limits
// and capability grants. The format is described in docs/manifest.md.
//
// The package guarantees that:
//   - a manifest is either returned whole and valid, or not at all: any
//     problem, syntactic or semantic, gives an *Error that matches
//     ErrInvalid and lists every problem found, each with the file, line
//     and column of the offending attribute, key, label or block;
//   - unknown attributes and blocks are errors, never silently ignored;
//   - nothing is granted unless written: capabilities are deny-by-default,
//     the http and filesystem sections grant only the grants they list;
//   - expressions are evaluated without variables or functions, so reading
//     a manifest has no side effects and depends only on its text.
//
// Defaults are not applied here. A zero field means "not set"; the host
// applies defaults and command-line overrides (see docs/manifest.md).
package manifest

import (
	"cmp"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	hcljson "github.com/hashicorp/hcl/v2/json"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"

	"github.com/blockhost/blockhost/host/capability"
	"github.com/blockhost/blockhost/host/fscap"
	"github.com/blockhost/blockhost/host/httpcap"
)

// Manifest is a parsed, validated block manifest.
type Manifest struct {
	// Path is the file the manifest was read from, as given to ParseFile
	// or Parse.
	Path string
	// Name is the block's label: block "NAME" { ... }.
	Name string
	// Module is the path of the block's WebAssembly module. A relative
	// path in the manifest is joined to the manifest's directory, so
	// Module is either absolute or relative to the same directory Path is.
	Module string
	// ModuleName is the module attribute as written, before it is joined
	// to the manifest's directory. A host that has built-in blocks runs the
	// built-in of that name when no file exists at Module (docs/manifest.md).
	ModuleName string
	// Engine names the WebAssembly engine to run the block on, or is
	// empty when the manifest does not choose one. It is not checked
	// against the registered engines here; the caller does that.
	Engine string
	// Args is the guest's argv after the program name. It is nil when the
	// manifest has no args, and empty but not nil for args = [].
	Args []string
	// Limits holds the limits the manifest sets; zero fields are unset.
	Limits Limits
	// Env is the environment granted to the guest through WASI. It is nil
	// when the manifest grants none, and empty but not nil for env = {}.
	Env map[string]string
	// HTTP is the http section's grants, in order, validated as the host
	// validates them; their zero fields take httpcap's defaults. It is nil
	// when the manifest grants none.
	HTTP []httpcap.Grant
	// Schedule is the block's priority, deadlines and retry policy for
	// an executor (retry.go).
	Schedule Schedule
	// FS is the filesystem section's directory grants, in order (fs.go).
	// A relative host directory is joined to the manifest's directory but
	// not made absolute. It is nil when the manifest grants none.
	FS []fscap.Grant
	// Function is the export an Extism plugin's steps call, or empty
	// (extism.go).
	Function string
	// Config is an Extism plugin's configuration; nil when the manifest
	// sets none (extism.go).
	Config map[string]string
	// Caps are the grants of the sections of registered capabilities
	// that decode their own (capability.ManifestSection), such as
	// capabilities { sql { … } }, by capability name, in the type the
	// capability's Open takes; host.Grants.Caps takes them as they are.
	// It is nil when the manifest has no such section.
	Caps map[string]any
	// SHA256 is the module's pinned digest, 64 lower-case hex digits, or
	// empty when the manifest pins none (pin.go). Optional.
	SHA256 string
}

// Limits are the resource limits a manifest sets. A zero field means the
// manifest does not set that limit and the host's default applies (see
// docs/abi.md §7); a set field is always positive.
type Limits struct {
	// Timeout bounds each step's run time.
	Timeout time.Duration
	// Memory bounds the guest's linear memory, in bytes; at most
	// MaxMemory. Rounding to whole pages is the host's job.
	Memory uint64
	// Output bounds a step's output, in bytes.
	Output uint64
	// Log bounds a step's log records, in bytes.
	Log uint64
}

// ParseFile reads and parses the manifest at path. The syntax is chosen by
// the file name as for Parse. A file that cannot be read gives an error
// wrapping the os package's *fs.PathError, which names the path; such an
// error does not match ErrInvalid.
func ParseFile(path string) (*Manifest, error) {
	src, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("manifest: %w", err)
	}
	return Parse(src, path)
}

// Parse parses a manifest from src. filename is used for diagnostics, to
// choose the syntax (HCL's JSON form when it ends in ".json", in any case;
// HCL native syntax otherwise, normally ".hcl") and to resolve a relative
// module path against filepath.Dir(filename).
//
// Any error is an *Error and matches ErrInvalid.
func Parse(src []byte, filename string) (*Manifest, error) {
	var (
		file  *hcl.File
		diags hcl.Diagnostics
	)
	if isJSON(filename) {
		file, diags = hcljson.Parse(src, filename)
	} else {
		file, diags = hclsyntax.ParseConfig(src, filename, hcl.InitialPos)
	}
	if diags.HasErrors() {
		// The body of a file that did not parse is partial; decoding it
		// would add confusing follow-on errors.
		return nil, newError(filename, diags)
	}
	d := &decoder{filename: filename}
	m := d.file(file.Body)
	if d.diags.HasErrors() {
		return nil, newError(filename, d.diags)
	}
	return m, nil
}

func isJSON(filename string) bool {
	return strings.EqualFold(filepath.Ext(filename), ".json")
}

func newError(filename string, diags hcl.Diagnostics) *Error {
	e := &Error{}
	for _, diag := range diags {
		if diag.Severity != hcl.DiagError {
			continue
		}
		d := Diagnostic{File: filename, Summary: diag.Summary, Detail: diag.Detail}
		if diag.Subject != nil {
			if diag.Subject.Filename != "" {
				d.File = diag.Subject.Filename
			}
			d.Line, d.Column = diag.Subject.Start.Line, diag.Subject.Start.Column
		}
		e.Diagnostics = append(e.Diagnostics, d)
	}
	// HCL reports some problems in map order; source order is stable and
	// reads top to bottom.
	slices.SortStableFunc(e.Diagnostics, func(a, b Diagnostic) int {
		return cmp.Or(cmp.Compare(a.Line, b.Line), cmp.Compare(a.Column, b.Column))
	})
	return e
}

var (
	fileSchema = &hcl.BodySchema{
		Blocks: []hcl.BlockHeaderSchema{{Type: "block", LabelNames: []string{"name"}}},
	}
	blockSchema = &hcl.BodySchema{
		// module is required, but checked by hand so that the error points
		// at the block and names it.
		Attributes: []hcl.AttributeSchema{{Name: "module"}, {Name: "engine"}, {Name: "args"},
			{Name: "priority"}, {Name: "total_deadline"}, {Name: "queue_timeout"}, {Name: "function"}, {Name: "sha256"}},
		Blocks: []hcl.BlockHeaderSchema{{Type: "limits"}, {Type: "capabilities"}, {Type: "retry"}, {Type: "config"}},
	}
	limitsSchema = &hcl.BodySchema{
		Attributes: []hcl.AttributeSchema{{Name: "timeout"}, {Name: "memory"}, {Name: "output"}, {Name: "log"}},
	}
	// capabilitiesSchema is built on first use, once every capability
	// has registered: a registered capability with a manifest section
	// (capability.ManifestSection) adds a block of its name.
	capabilitiesSchema = sync.OnceValue(func() *hcl.BodySchema {
		s := &hcl.BodySchema{
			Attributes: []hcl.AttributeSchema{{Name: "env"}},
			Blocks:     []hcl.BlockHeaderSchema{{Type: "http"}, {Type: "filesystem"}},
		}
		for _, c := range sectionCapabilities() {
			s.Blocks = append(s.Blocks, hcl.BlockHeaderSchema{Type: c.Name()})
		}
		return s
	})
)

// sectionCapabilities are the registered capabilities that decode a
// manifest section of their own, except those whose section this package
// decodes itself (http, filesystem) or whose name another part of the
// capabilities block takes.
func sectionCapabilities() []capability.Capability {
	var out []capability.Capability
	for _, c := range capability.All() {
		if _, ok := c.(capability.ManifestSection); !ok {
			continue
		}
		switch c.Name() {
		case "env", "http", "filesystem":
			continue
		}
		out = append(out, c)
	}
	return out
}

// decoder turns a parsed body into a Manifest, collecting every problem
// rather than stopping at the first, so one run shows the operator all of
// them.
type decoder struct {
	filename string
	diags    hcl.Diagnostics
}

func (d *decoder) errorf(rng hcl.Range, summary, format string, args ...any) {
	d.diags = append(d.diags, &hcl.Diagnostic{
		Severity: hcl.DiagError,
		Summary:  summary,
		Detail:   fmt.Sprintf(format, args...),
		Subject:  rng.Ptr(),
	})
}

func (d *decoder) file(body hcl.Body) *Manifest {
	content, diags := body.Content(fileSchema)
	d.diags = append(d.diags, diags...)
	if len(content.Blocks) == 0 {
		// A block that failed to decode is already reported; saying it is
		// missing too would only confuse.
		if !diags.HasErrors() {
			d.errorf(body.MissingItemRange(), "Missing block",
				`A manifest must define exactly one block "NAME" { module = "..." }.`)
		}
		return nil
	}
	first := content.Blocks[0]
	for _, extra := range content.Blocks[1:] {
		d.errorf(extra.DefRange, "Duplicate block",
			"A manifest defines exactly one block; the first is defined at %s.", at(first.DefRange))
	}
	return d.block(first)
}

func (d *decoder) block(blk *hcl.Block) *Manifest {
	m := &Manifest{Path: d.filename, Name: blk.Labels[0]}
	if m.Name == "" {
		d.errorf(blk.LabelRanges[0], "Invalid block name", "The block name must not be empty.")
	}
	content, diags := blk.Body.Content(blockSchema)
	d.diags = append(d.diags, diags...)

	if attr, ok := content.Attributes["module"]; ok {
		if s, ok := d.nonEmptyString(attr.Expr, "module", "module"); ok {
			m.ModuleName = s
			if filepath.IsAbs(s) {
				m.Module = filepath.Clean(s)
			} else {
				m.Module = filepath.Join(filepath.Dir(d.filename), s)
			}
		}
	} else {
		d.errorf(blk.DefRange, "Missing module",
			"The block %q must set module, the path of its WebAssembly module.", m.Name)
	}
	if attr, ok := content.Attributes["engine"]; ok {
		m.Engine, _ = d.nonEmptyString(attr.Expr, "engine", "engine")
	}
	if attr, ok := content.Attributes["args"]; ok {
		m.Args = d.args(attr.Expr)
	}
	if blk := d.single(content.Blocks, "limits"); blk != nil {
		m.Limits = d.limits(blk)
	}
	if blk := d.single(content.Blocks, "capabilities"); blk != nil {
		m.Env = d.capabilities(blk, m)
	}
	d.schedule(content, m) // retry.go
	d.extism(content, m)   // extism.go
	d.pin(content, m)      // pin.go
	return m
}

// single returns the first block of type typ, reporting any others, or nil
// when there is none.
func (d *decoder) single(blocks hcl.Blocks, typ string) *hcl.Block {
	var first *hcl.Block
	for _, blk := range blocks.OfType(typ) {
		if first == nil {
			first = blk
			continue
		}
		d.errorf(blk.DefRange, "Duplicate "+typ+" block",
			"Only one %s block is allowed; the first is defined at %s.", typ, at(first.DefRange))
	}
	return first
}

func (d *decoder) args(expr hcl.Expression) []string {
	elems, diags := hcl.ExprList(expr)
	if diags.HasErrors() {
		d.errorf(expr.Range(), "Invalid args",
			`args must be a list of strings, such as ["--verbose"].`)
		return nil
	}
	args := make([]string, 0, len(elems))
	for _, elem := range elems {
		s, ok := d.string(elem, "args", "each argument")
		if !ok {
			continue
		}
		// WASI passes argv as NUL-terminated strings; a NUL would cut the
		// argument short without anyone noticing.
		if strings.IndexByte(s, 0) >= 0 {
			d.errorf(elem.Range(), "Invalid args", "An argument must not contain a NUL character.")
		}
		args = append(args, s)
	}
	return args
}

func (d *decoder) limits(blk *hcl.Block) Limits {
	var l Limits
	content, diags := blk.Body.Content(limitsSchema)
	d.diags = append(d.diags, diags...)
	if attr, ok := content.Attributes["timeout"]; ok {
		if s, ok := d.string(attr.Expr, "timeout", "timeout"); ok {
			t, err := time.ParseDuration(s)
			switch {
			case err != nil:
				d.errorf(attr.Expr.Range(), "Invalid timeout",
					`%q is not a duration; use Go duration syntax such as "500ms", "5s" or "1m30s".`, s)
			case t <= 0:
				d.errorf(attr.Expr.Range(), "Invalid timeout", "The timeout must be greater than zero, not %q.", s)
			default:
				l.Timeout = t
			}
		}
	}
	l.Memory = d.size(content.Attributes["memory"], "memory", MaxMemory,
		"at most 4GiB, the 32-bit WebAssembly address space")
	l.Output = d.size(content.Attributes["output"], "output", 0, "")
	l.Log = d.size(content.Attributes["log"], "log", 0, "")
	return l
}

// size decodes a byte-size limit. max is the largest value allowed, or 0
// for no bound beyond uint64; why explains it in an error.
func (d *decoder) size(attr *hcl.Attribute, name string, max uint64, why string) uint64 {
	if attr == nil {
		return 0
	}
	s, ok := d.string(attr.Expr, name+" limit", name)
	if !ok {
		return 0
	}
	summary := "Invalid " + name + " limit"
	n, err := ParseSize(s)
	switch {
	case err != nil:
		d.errorf(attr.Expr.Range(), summary,
			"%s; use a number of bytes with an optional unit: B, KB, MB, GB, KiB, MiB or GiB.", err)
	case n == 0:
		d.errorf(attr.Expr.Range(), summary, "The %s limit must be greater than zero.", name)
	case max != 0 && n > max:
		d.errorf(attr.Expr.Range(), summary, "The %s limit is %q but must be %s.", name, s, why)
	default:
		return n
	}
	return 0
}

func (d *decoder) capabilities(blk *hcl.Block, m *Manifest) map[string]string {
	content, diags := blk.Body.Content(capabilitiesSchema())
	d.diags = append(d.diags, diags...)
	if blk := d.single(content.Blocks, "http"); blk != nil {
		m.HTTP = d.http(blk) // http.go
	}
	if blk := d.single(content.Blocks, "filesystem"); blk != nil {
		m.FS = d.filesystem(blk) // fs.go
	}
	for _, c := range sectionCapabilities() {
		blk := d.single(content.Blocks, c.Name())
		if blk == nil {
			continue
		}
		g, diags := c.(capability.ManifestSection).DecodeSection(blk.Body, filepath.Dir(d.filename))
		d.diags = append(d.diags, diags...)
		if g != nil && !diags.HasErrors() {
			if m.Caps == nil {
				m.Caps = map[string]any{}
			}
			m.Caps[c.Name()] = g
		}
	}
	if attr, ok := content.Attributes["env"]; ok {
		return d.env(attr.Expr)
	}
	return nil
}

func (d *decoder) env(expr hcl.Expression) map[string]string {
	pairs, diags := hcl.ExprMap(expr)
	if diags.HasErrors() {
		d.errorf(expr.Range(), "Invalid env",
			`env must be a map from variable names to strings, such as { GREETING = "hi" }.`)
		return nil
	}
	env := make(map[string]string, len(pairs))
	seen := make(map[string]hcl.Range, len(pairs))
	for _, pair := range pairs {
		name, okName := d.string(pair.Key, "env name", "a variable name")
		value, okValue := d.string(pair.Value, "env value", "a variable's value")
		if !okName {
			continue
		}
		if !validEnvName(name) {
			d.errorf(pair.Key.Range(), "Invalid env name",
				"%q is not a valid environment variable name; use letters, digits and underscores, not starting with a digit.", name)
			continue
		}
		if first, dup := seen[name]; dup {
			d.errorf(pair.Key.Range(), "Duplicate env name",
				"The variable %s is already set at %s.", name, at(first))
			continue
		}
		seen[name] = pair.Key.Range()
		if !okValue {
			continue
		}
		if strings.IndexByte(value, 0) >= 0 {
			d.errorf(pair.Value.Range(), "Invalid env value",
				"The value of %s must not contain a NUL character.", name)
			continue
		}
		env[name] = value
	}
	return env
}

// validEnvName reports whether name matches [A-Za-z_][A-Za-z0-9_]*.
func validEnvName(name string) bool {
	if name == "" {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c == '_', 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z':
		case '0' <= c && c <= '9' && i > 0:
		default:
			return false
		}
	}
	return true
}

func (d *decoder) nonEmptyString(expr hcl.Expression, field, what string) (string, bool) {
	s, ok := d.string(expr, field, what)
	if ok && s == "" {
		d.errorf(expr.Range(), "Invalid "+field, "%s must not be empty.", upper(what))
		return "", false
	}
	return s, ok
}

// string evaluates expr, with no variables or functions, to a string.
// Numbers and bools convert as HCL converts them elsewhere, so memory =
// 65536 means the same as memory = "65536". field names the attribute in
// an error's summary and what names the value in its detail.
func (d *decoder) string(expr hcl.Expression, field, what string) (string, bool) {
	v, diags := expr.Value(nil)
	d.diags = append(d.diags, diags...)
	if diags.HasErrors() {
		return "", false
	}
	v, _ = v.Unmark()
	if v.IsNull() {
		d.errorf(expr.Range(), "Invalid "+field, "%s must not be null.", upper(what))
		return "", false
	}
	v, err := convert.Convert(v, cty.String)
	if err != nil {
		d.errorf(expr.Range(), "Invalid "+field, "%s must be a string: %s.", upper(what), err)
		return "", false
	}
	if !v.IsKnown() || v.IsNull() {
		d.errorf(expr.Range(), "Invalid "+field, "%s must be a known string.", upper(what))
		return "", false
	}
	return v.AsString(), true
}

// upper capitalises the first letter of an ASCII phrase, to start a
// sentence with it.
func upper(s string) string {
	if s != "" && 'a' <= s[0] && s[0] <= 'z' {
		return string(s[0]-'a'+'A') + s[1:]
	}
	return s
}

// at formats a source position the way Diagnostic does, file:line:col.
func at(r hcl.Range) string {
	return fmt.Sprintf("%s:%d:%d", r.Filename, r.Start.Line, r.Start.Column)
}
