package fscap

import (
	"context"
	"io/fs"
	"path"
	"slices"
	"strings"
	"time"
)

// Directories above the grants. A guest path that lies above one or more
// granted directories and inside none — "/" when the only grant is
// "/data", or "/srv" for a grant at "/srv/data" — is a read-only virtual
// directory listing the next element of each grant's guest path, so that
// a block can walk its file system from the root. Nothing on the host is
// behind it.

// virtualDir returns the names directly under p that lead to grants, and
// whether p is such a directory.
func (s *Session) virtualDir(p string) ([]string, bool) {
	if _, _, pr := splitGuestPath(p); pr != nil {
		return nil, false
	}
	if _, _, pr := s.lookup(p); pr == nil {
		return nil, false
	}
	prefix := p
	if prefix != "/" {
		prefix += "/"
	}
	var names []string
	for _, g := range s.grants {
		if rest, ok := strings.CutPrefix(g.GuestPath, prefix); ok && rest != "" {
			name, _, _ := strings.Cut(rest, "/")
			if !slices.Contains(names, name) {
				names = append(names, name)
			}
		}
	}
	slices.Sort(names)
	return names, len(names) > 0
}

// statVirtual and listVirtual answer Stat and ReadDir for a virtual
// directory; ok is false when p is not one.
func (s *Session) statVirtual(ctx context.Context, p string) (fs.FileInfo, bool) {
	if _, ok := s.virtualDir(p); !ok {
		return nil, false
	}
	s.logVirtual(ctx, "stat", p)
	return virtualEntry(path.Base(p)), true
}

func (s *Session) listVirtual(ctx context.Context, p string) ([]fs.DirEntry, bool) {
	names, ok := s.virtualDir(p)
	if !ok {
		return nil, false
	}
	s.logVirtual(ctx, "list", p)
	ents := make([]fs.DirEntry, len(names))
	for i, n := range names {
		ents[i] = virtualEntry(n)
	}
	return ents, true
}

func (s *Session) logVirtual(ctx context.Context, name, p string) {
	s.log.done(&op{s: s, name: name, path: p, stepCtx: ctx, start: time.Now()})
}

// virtualEntry is a virtual directory as fs.FileInfo and fs.DirEntry.
type virtualEntry string

func (v virtualEntry) Name() string               { return string(v) }
func (v virtualEntry) Size() int64                { return 0 }
func (v virtualEntry) Mode() fs.FileMode          { return fs.ModeDir | 0o555 }
func (v virtualEntry) ModTime() time.Time         { return time.Unix(0, 0) }
func (v virtualEntry) IsDir() bool                { return true }
func (v virtualEntry) Sys() any                   { return nil }
func (v virtualEntry) Type() fs.FileMode          { return fs.ModeDir }
func (v virtualEntry) Info() (fs.FileInfo, error) { return v, nil }
