package fscap

import (
	"fmt"
	"path/filepath"
	"strings"
	"time"
)

// Grant gives a step one host directory. The zero values of Quota's fields
// and of Timeout mean the defaults below.
type Grant struct {
	// Name identifies the grant in logs and diagnostics, such as "data".
	// Empty means GuestPath.
	Name string
	// HostDir is the directory on the host: an absolute path. Symbolic
	// links in it are followed once, when a step opens the grant; from then
	// on the step holds the directory itself, wherever it is moved.
	HostDir string
	// GuestPath is where the block sees the directory, such as "/data": an
	// absolute, clean, slash-separated path. Two grants of a step may not
	// share a guest path or nest one inside the other.
	GuestPath string
	// ReadOnly refuses every change under the directory.
	ReadOnly bool
	// Quota bounds what one step may do under the directory.
	Quota Quota
	// Timeout bounds each file operation, on top of the step's deadline.
	// Default DefaultTimeout.
	Timeout time.Duration
}

// Quota bounds what one step may write under one grant. A zero field means
// the default in DefaultQuota.
type Quota struct {
	// WriteBytes caps the bytes written per step, counting every write,
	// append and staged replacement, whether or not it completes.
	WriteBytes int64
	// Files caps the files and directories created per step.
	Files int64
	// FileSize caps the size of any file a write or append leaves behind.
	FileSize int64
}

// Defaults for a Grant's zero fields.
var (
	DefaultQuota = Quota{
		WriteBytes: 64 << 20,
		Files:      1000,
		FileSize:   64 << 20,
	}
	DefaultTimeout = 10 * time.Second
)

// MaxQuota is the largest value a Quota field may have.
const MaxQuota = 1 << 62

// Or returns q with each zero field taken from d.
func (q Quota) Or(d Quota) Quota {
	if q.WriteBytes == 0 {
		q.WriteBytes = d.WriteBytes
	}
	if q.Files == 0 {
		q.Files = d.Files
	}
	if q.FileSize == 0 {
		q.FileSize = d.FileSize
	}
	return q
}

// withDefaults fills in every zero field.
func (g Grant) withDefaults() Grant {
	if g.Name == "" {
		g.Name = g.GuestPath
	}
	g.Quota = g.Quota.Or(DefaultQuota)
	if g.Timeout == 0 {
		g.Timeout = DefaultTimeout
	}
	return g
}

// Validate checks one grant's fields. It does not look at the host
// directory; opening a step's grants does.
func (g Grant) Validate() error {
	switch {
	case g.HostDir == "":
		return fmt.Errorf("fscap: grant %s: no host directory", g.label())
	case !filepath.IsAbs(g.HostDir):
		return fmt.Errorf("fscap: grant %s: host directory %q is not an absolute path", g.label(), g.HostDir)
	case strings.IndexByte(g.HostDir, 0) >= 0:
		return fmt.Errorf("fscap: grant %s: host directory contains a NUL byte", g.label())
	}
	if err := ValidGuestPath(g.GuestPath); err != nil {
		return fmt.Errorf("fscap: grant %s: %w", g.label(), err)
	}
	if g.Name != "" && !printable(g.Name) {
		return fmt.Errorf("fscap: grant name %q must be printable UTF-8", g.Name)
	}
	for _, f := range []struct {
		name string
		v    int64
	}{{"bytes written", g.Quota.WriteBytes}, {"files created", g.Quota.Files}, {"file size", g.Quota.FileSize}} {
		if f.v < 0 || f.v > MaxQuota {
			return fmt.Errorf("fscap: grant %s: %s quota %d is out of range", g.label(), f.name, f.v)
		}
	}
	if g.Timeout < 0 {
		return fmt.Errorf("fscap: grant %s: negative timeout %s", g.label(), g.Timeout)
	}
	return nil
}

func (g Grant) label() string {
	if g.Name != "" {
		return fmt.Sprintf("%q", g.Name)
	}
	return fmt.Sprintf("%q", g.GuestPath)
}

// ValidateGrants checks a step's grants: each valid, names and guest paths
// unique. Guest paths may nest (/data and /data/cache): a path belongs to
// the grant with the longest guest path that contains it.
func ValidateGrants(grants []Grant) error {
	for i, g := range grants {
		if err := g.Validate(); err != nil {
			return err
		}
		gi := g.withDefaults()
		for _, h := range grants[:i] {
			hj := h.withDefaults()
			if gi.GuestPath == hj.GuestPath {
				return fmt.Errorf("fscap: grants %q and %q overlap: both at guest path %s", hj.Name, gi.Name, gi.GuestPath)
			}
			if gi.Name == hj.Name {
				return fmt.Errorf("fscap: two grants are named %q", gi.Name)
			}
		}
	}
	return nil
}

// ValidGuestPath checks a grant's guest path: absolute, clean, of valid
// names, such as "/data" or "/".
func ValidGuestPath(p string) error {
	if p == "/" {
		return nil
	}
	if _, _, err := splitGuestPath(p); err != nil {
		return fmt.Errorf("guest path %q: %s", p, err.Detail)
	}
	return nil
}

// ParseDirSpec parses the command line's HOST[:GUEST][:ro|rw]. HOST is
// made absolute against the working directory; GUEST defaults to "/" and
// HOST's last element; the mode defaults to ro. The grant is named after
// its guest path.
func ParseDirSpec(spec string) (Grant, error) {
	var g Grant
	g.ReadOnly = true
	parts := strings.Split(spec, ":")
	if n := len(parts); n > 1 {
		switch parts[n-1] {
		case "ro":
			parts = parts[:n-1]
		case "rw":
			g.ReadOnly = false
			parts = parts[:n-1]
		}
	}
	if n := len(parts); n > 1 && strings.HasPrefix(parts[n-1], "/") {
		g.GuestPath = parts[n-1]
		parts = parts[:n-1]
	}
	host := strings.Join(parts, ":")
	if host == "" {
		return Grant{}, fmt.Errorf("fscap: %q: no host directory (want HOST[:GUEST][:ro|rw])", spec)
	}
	abs, err := filepath.Abs(host)
	if err != nil {
		return Grant{}, fmt.Errorf("fscap: %q: %w", spec, err)
	}
	g.HostDir = abs
	if g.GuestPath == "" {
		g.GuestPath = "/" + filepath.Base(abs)
		if abs == string(filepath.Separator) {
			g.GuestPath = "/"
		}
	}
	g.Name = g.GuestPath
	if err := g.Validate(); err != nil {
		return Grant{}, fmt.Errorf("%w (in %q)", err, spec)
	}
	return g, nil
}
