package fscap

import (
	"strings"
	"unicode/utf8"
)

// Limits on names, checked before anything reaches the file system.
const (
	// MaxPath is the longest path, in bytes, a guest may give.
	MaxPath = 4096
	// MaxName is the longest element of a path, in bytes.
	MaxName = 255
)

// tempPrefix starts the names of staged writes. Such files are never
// listed; a failed write removes its own.
const tempPrefix = ".blockhost-tmp-"

// problem is why a path was refused before it reached the file system.
type problem struct {
	class  error
	Detail string
}

// checkChars refuses what is never a valid name: invalid UTF-8, NUL and
// other control characters, which have no business in a file name and are
// a classic way to make one look like another in a log.
func checkChars(p string) *problem {
	if len(p) > MaxPath {
		return &problem{ErrInvalidPath, "longer than 4096 bytes"}
	}
	if !utf8.ValidString(p) {
		return &problem{ErrInvalidPath, "not valid UTF-8"}
	}
	for i := 0; i < len(p); i++ {
		if c := p[i]; c < 0x20 || c == 0x7f {
			if c == 0 {
				return &problem{ErrInvalidPath, "contains a NUL byte"}
			}
			return &problem{ErrInvalidPath, "contains a control character"}
		}
	}
	return nil
}

// checkElem checks one element of a path.
func checkElem(e string) *problem {
	switch {
	case e == "":
		return &problem{ErrInvalidPath, "empty element (a doubled or trailing slash)"}
	case e == ".":
		return &problem{ErrInvalidPath, `"." element`}
	case e == "..":
		// A ".." is refused even when it would stay inside the grant:
		// whether it does depends on symbolic links, and resolving it by
		// string is the mistake this package exists to avoid.
		return &problem{ErrPermission, `".." element: a path may not climb out of a directory`}
	case len(e) > MaxName:
		return &problem{ErrInvalidPath, "an element is longer than 255 bytes"}
	case strings.IndexByte(e, '\\') >= 0:
		// A separator elsewhere: such a name means something else when the
		// directory is read from another system.
		return &problem{ErrInvalidPath, "contains a backslash"}
	}
	return nil
}

// splitGuestPath checks an absolute guest path and returns it without its
// leading slash, split into elements ("/" gives none).
func splitGuestPath(p string) (string, []string, *problem) {
	if p == "" {
		return "", nil, &problem{ErrInvalidPath, "empty path"}
	}
	if pr := checkChars(p); pr != nil {
		return "", nil, pr
	}
	if p[0] != '/' {
		return "", nil, &problem{ErrInvalidPath, "not an absolute path"}
	}
	if p == "/" {
		return "", nil, nil
	}
	rest := p[1:]
	elems := strings.Split(rest, "/")
	// Report a ".." first: it is the one that says what was attempted.
	for _, e := range elems {
		if e == ".." {
			return "", nil, checkElem(e)
		}
	}
	for _, e := range elems {
		if pr := checkElem(e); pr != nil {
			return "", nil, pr
		}
	}
	return rest, elems, nil
}

// checkRel checks a name relative to a grant's root as an engine's WASI
// passes it: "." for the root, otherwise elements as for a guest path, with
// one trailing slash allowed. It returns the name without the slash and
// whether there was one.
func checkRel(name string) (string, bool, *problem) {
	if name == "." || name == "" {
		return ".", false, nil
	}
	if pr := checkChars(name); pr != nil {
		return "", false, pr
	}
	if name[0] == '/' {
		return "", false, &problem{ErrPermission, "absolute path"}
	}
	slash := strings.HasSuffix(name, "/")
	rel := strings.TrimSuffix(name, "/")
	for _, e := range strings.Split(rel, "/") {
		if pr := checkElem(e); pr != nil {
			return "", false, pr
		}
	}
	return rel, slash, nil
}

// listable reports whether a directory entry's name is one a guest may
// see: valid as a path element and not a staged write.
func listable(name string) bool {
	return checkChars(name) == nil && checkElem(name) == nil && !strings.HasPrefix(name, tempPrefix)
}

// printable reports whether s is valid UTF-8 without control characters.
func printable(s string) bool { return checkChars(s) == nil }
