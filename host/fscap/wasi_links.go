package fscap

import (
	"os"
	"path"
	"syscall"
	"time"
)

// Symbolic links, hard links and times, as a WASI guest changes them.

// Symlink implements engine.DirFS. The link is created beneath the grant's
// os.Root; its target is stored as given, except that an absolute target
// or one that climbs out of the grant from where the link sits is refused:
// following it could only fail, and no link a guest makes points outside.
func (w *wasiFS) Symlink(target, name string) error {
	o, _, err := w.begin("symlink", name, true)
	if err != nil {
		return err
	}
	if o.rel == "." {
		return toWASI(o.refuse(ErrExist, "the granted directory exists"))
	}
	if pr := checkChars(target); pr != nil || target == "" {
		return toWASI(o.refuse(ErrInvalidPath, "link target: not a valid path"))
	}
	if path.IsAbs(target) || escapes(path.Dir(o.rel), target) {
		return toWASI(o.refuse(ErrPermission, "link target leads out of the granted directory"))
	}
	if err := o.checkFile(); err != nil {
		return toWASI(err)
	}
	if err := call0(w.s, o.ctx, &o.tr, func() error { return w.g.root.Symlink(target, o.rel) }); err != nil {
		return toWASI(o.end(err))
	}
	o.created()
	return o.end(nil)
}

// escapes reports whether target, relative to the directory dir (both
// slash-separated, dir relative to the grant's root), names something
// above the root.
func escapes(dir, target string) bool {
	depth := 0
	if dir != "." {
		depth = len(splitElems(dir))
	}
	for _, e := range splitElems(target) {
		switch e {
		case "", ".":
		case "..":
			depth--
			if depth < 0 {
				return true
			}
		default:
			depth++
		}
	}
	return false
}

func splitElems(p string) []string {
	var out []string
	for len(p) > 0 {
		i := 0
		for i < len(p) && p[i] != '/' {
			i++
		}
		out = append(out, p[:i])
		if i == len(p) {
			break
		}
		p = p[i+1:]
	}
	return out
}

// Link implements engine.DirFS.
func (w *wasiFS) Link(oldname, newname string) error {
	o, _, err := w.begin("link", newname, true)
	if err != nil {
		return err
	}
	rel, _, pr := checkRel(oldname)
	switch {
	case pr != nil:
		return toWASI(o.refuse(pr.class, "link source: "+pr.Detail))
	case o.rel == ".":
		return toWASI(o.refuse(ErrExist, "the granted directory exists"))
	case rel == ".":
		return toWASI(o.refuse(ErrPermission, "the granted directory itself cannot be linked"))
	}
	if err := o.checkFile(); err != nil {
		return toWASI(err)
	}
	if err := call0(w.s, o.ctx, &o.tr, func() error { return w.g.root.Link(rel, o.rel) }); err != nil {
		return toWASI(o.end(err))
	}
	o.created()
	return o.end(nil)
}

// SetTimes implements engine.DirFS. With follow false, a symbolic link's
// own times are set (lutimes).
func (w *wasiFS) SetTimes(name string, atime, mtime *time.Time, follow bool) error {
	o, _, err := w.begin("chtimes", name, true)
	if err != nil {
		return err
	}
	root := w.g.root
	return toWASI(o.end(call0(w.s, o.ctx, &o.tr, func() error {
		info, err := root.Lstat(o.rel)
		if err != nil {
			return err
		}
		if info.Mode()&os.ModeSymlink != 0 {
			if !follow {
				return lutimes(root, o.rel, atime, mtime)
			}
			if info, err = root.Stat(o.rel); err != nil {
				return err
			}
		}
		a, m := times(info)
		if atime != nil {
			a = *atime
		}
		if mtime != nil {
			m = *mtime
		}
		return root.Chtimes(o.rel, a, m)
	})))
}

// SetTimes implements engine.DirFile, on the open descriptor (futimens).
func (f *wasiFile) SetTimes(atime, mtime *time.Time) error {
	return f.do("chtimes", f.canWrite, func(o *op) error {
		return call0(f.w.s, o.ctx, &f.tr, func() error { return futimes(f.f, atime, mtime) })
	})
}

// SetAppend implements engine.DirFile: O_APPEND is set or cleared on the
// descriptor itself (fcntl), so that appends stay atomic.
func (f *wasiFile) SetAppend(enable bool) error {
	if !f.canWrite {
		return &wasiError{os.ErrPermission, syscall.EBADF}
	}
	return f.do("setflags", false, func(o *op) error {
		err := call0(f.w.s, o.ctx, &f.tr, func() error { return setAppend(f.f, enable) })
		if err == nil {
			f.append = enable
		}
		return err
	})
}
