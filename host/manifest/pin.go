package manifest

import (
	"strings"

	"github.com/hashicorp/hcl/v2"
)

// The module's pinned digest:
//
//	block "fetch" {
//	  module = "fetch.wasm"
//	  sha256 = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
//	}
//
// It is optional and only read here; refusing a module whose digest
// differs is the host's job.
func (d *decoder) pin(content *hcl.BodyContent, m *Manifest) {
	attr, ok := content.Attributes["sha256"]
	if !ok {
		return
	}
	s, ok := d.string(attr.Expr, "sha256", "sha256")
	if !ok {
		return
	}
	raw := s
	s = strings.ToLower(strings.TrimPrefix(s, "sha256:"))
	if len(s) != 64 || strings.Trim(s, "0123456789abcdef") != "" {
		d.errorf(attr.Expr.Range(), "Invalid sha256",
			"sha256 must be the module's SHA-256 digest, 64 hexadecimal digits (sha256sum prints it), not %q.", raw)
		return
	}
	m.SHA256 = s
}
