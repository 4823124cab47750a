package manifest

import (
	"fmt"
	"path/filepath"
	"strings"

	"github.com/hashicorp/hcl/v2"

	"github.com/blockhost/blockhost/host/fscap"
)

// The filesystem section of capabilities:
//
//	filesystem {
//	  dir "data" {
//	    host    = "./data"   # the host directory; relative to the manifest
//	    guest   = "/data"    # where the block sees it; default "/" + the label
//	    mode    = "rw"       # "ro" (the default) or "rw"
//	    timeout = "5s"       # each file operation; default 10s
//	    quota {
//	      write_bytes = "64MiB" # bytes written per step; default 64MiB
//	      files       = 1000    # files and directories created per step; default 1000
//	      file_size   = "64MiB" # largest file; default 64MiB
//	    }
//	  }
//	}
//
// Each dir block is one fscap.Grant, named by its label. The --allow-dir
// flag adds grants of the same kind.
var (
	fsSchema = &hcl.BodySchema{
		Blocks: []hcl.BlockHeaderSchema{{Type: "dir", LabelNames: []string{"name"}}},
	}
	fsDirSchema = &hcl.BodySchema{
		Attributes: []hcl.AttributeSchema{{Name: "host", Required: true}, {Name: "guest"}, {Name: "mode"}, {Name: "timeout"}},
		Blocks:     []hcl.BlockHeaderSchema{{Type: "quota"}},
	}
	fsQuotaSchema = &hcl.BodySchema{
		Attributes: []hcl.AttributeSchema{{Name: "write_bytes"}, {Name: "files"}, {Name: "file_size"}},
	}
)

// filesystem decodes the filesystem section into grants, each checked as
// the host will check it, with problems reported where they are.
//
// A relative host directory is joined to the manifest's directory, as the
// module path is; it is made absolute against the working directory when
// the grant is used, not here.
func (d *decoder) filesystem(blk *hcl.Block) []fscap.Grant {
	content, diags := blk.Body.Content(fsSchema)
	d.diags = append(d.diags, diags...)
	var grants []fscap.Grant
	names := map[string]hcl.Range{}
	guests := map[string]hcl.Range{}
	for _, db := range content.Blocks {
		name := db.Labels[0]
		if name == "" || strings.ContainsAny(name, "\x00\n\r\t") {
			d.errorf(db.LabelRanges[0], "Invalid dir name", "A dir's name must be printable and not empty.")
			continue
		}
		if first, dup := names[name]; dup {
			d.errorf(db.LabelRanges[0], "Duplicate dir", "The dir %q is already defined at %s.", name, at(first))
			continue
		}
		names[name] = db.LabelRanges[0]
		g, guestRange, ok := d.fsDir(db, name)
		if !ok {
			continue
		}
		// Guest paths may nest (a guest's libc picks the longest preopen
		// that matches), but two dirs cannot share one.
		if rng, dup := guests[g.GuestPath]; dup {
			d.errorf(guestRange, "Overlapping dirs",
				"The guest path %s is already granted at %s; each dir needs a guest path of its own.", g.GuestPath, at(rng))
			continue
		}
		guests[g.GuestPath] = guestRange
		grants = append(grants, g)
	}
	return grants
}

func (d *decoder) fsDir(blk *hcl.Block, name string) (fscap.Grant, hcl.Range, bool) {
	g := fscap.Grant{Name: name, GuestPath: "/" + name, ReadOnly: true}
	guestRange := blk.LabelRanges[0]
	content, diags := blk.Body.Content(fsDirSchema)
	d.diags = append(d.diags, diags...)
	if diags.HasErrors() {
		return g, guestRange, false
	}
	before := len(d.diags)
	attrs := content.Attributes
	if a := attrs["host"]; a != nil {
		if s, ok := d.nonEmptyString(a.Expr, "host", "host"); ok {
			switch {
			case strings.IndexByte(s, 0) >= 0:
				d.errorf(a.Expr.Range(), "Invalid host", "The host directory must not contain a NUL character.")
			case filepath.IsAbs(s):
				g.HostDir = filepath.Clean(s)
			default:
				g.HostDir = filepath.Join(filepath.Dir(d.filename), s)
			}
		}
	}
	if a := attrs["guest"]; a != nil {
		guestRange = a.Expr.Range()
		if s, ok := d.string(a.Expr, "guest", "guest"); ok {
			if err := fscap.ValidGuestPath(s); err != nil {
				d.errorf(a.Expr.Range(), "Invalid guest", "%s; a guest path is absolute and clean, such as \"/data\".", upper(err.Error()))
			} else {
				g.GuestPath = s
			}
		}
	} else if err := fscap.ValidGuestPath(g.GuestPath); err != nil {
		d.errorf(blk.LabelRanges[0], "Invalid guest",
			"The dir's name %q does not make a valid guest path (%s); set guest.", name, err)
	}
	if a := attrs["mode"]; a != nil {
		if s, ok := d.string(a.Expr, "mode", "mode"); ok {
			switch s {
			case "ro":
			case "rw":
				g.ReadOnly = false
			default:
				d.errorf(a.Expr.Range(), "Invalid mode", `mode must be "ro" (read-only) or "rw" (read-write), not %q.`, s)
			}
		}
	}
	if a := attrs["timeout"]; a != nil {
		g.Timeout = d.duration(a)
	}
	if qb := d.single(content.Blocks, "quota"); qb != nil {
		g.Quota = d.fsQuota(qb)
	}
	return g, guestRange, len(d.diags) == before
}

func (d *decoder) fsQuota(blk *hcl.Block) fscap.Quota {
	var q fscap.Quota
	content, diags := blk.Body.Content(fsQuotaSchema)
	d.diags = append(d.diags, diags...)
	why := fmt.Sprintf("at most %d bytes", uint64(fscap.MaxQuota))
	q.WriteBytes = int64(d.size(content.Attributes["write_bytes"], "write_bytes", fscap.MaxQuota, why))
	q.FileSize = int64(d.size(content.Attributes["file_size"], "file_size", fscap.MaxQuota, why))
	if a := content.Attributes["files"]; a != nil {
		q.Files = int64(d.integer(a, 1, fscap.MaxQuota))
	}
	return q
}
