// Package sealed holds bytes in a sealed memory file (Linux's memfd): a
// file in memory that, once sealed, nothing can write, shrink or grow, not
// through its descriptor, not through /proc/self/fd, not by anything that
// inherits it. A mapping of it therefore always reads the bytes it was
// made with, and can never fault past the file's end.
package sealed

import "errors"

// ErrUnavailable is returned where there are no sealed memory files (an
// old kernel, another system); callers keep the bytes in memory instead.
var ErrUnavailable = errors.New("sealed: no sealed memory files here")
