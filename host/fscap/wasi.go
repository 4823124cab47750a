package fscap

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/blockhost/blockhost/host/engine"
)

// wasiFS is one grant as an engine's WASI reaches it: the same os.Root,
// the same name checks, quotas, timeouts and logging as the host calls.
// Only the shape differs, to fit what WASI preview1 asks of a file system:
//
//   - a file opened with truncation is staged: the guest writes a new file
//     beside the old one, which replaces it when the guest closes it — or
//     at the end of the run, unless the step timed out or was cancelled, or
//     a write to it failed;
//   - a new file is created in place, so that its name exists while the
//     guest writes it, and is removed again on close if a write to it
//     failed or the step did not finish;
//   - a file opened for writing without truncation is changed in place, as
//     WASI requires; such writes are bounded and counted but not atomic;
//   - a refusal is a WASI error number: EPERM for a path that leads out of
//     the grant, EROFS for a write under a read-only grant, EIO for a quota,
//     a timeout or the end of the step (WASI has no ENOSPC or ETIMEDOUT).
//
// The guest may create symbolic and hard links and set times
// (wasi_links.go), but not change permissions.
type wasiFS struct {
	s *Session
	g *grant
}

var (
	_ engine.DirFS   = (*wasiFS)(nil)
	_ engine.DirFile = (*wasiFile)(nil)
)

// wasiError is a refusal as an engine sees it: the *Error, and the errno
// that stands for it.
type wasiError struct {
	err   error
	errno syscall.Errno
}

func (e *wasiError) Error() string   { return e.err.Error() }
func (e *wasiError) Unwrap() []error { return []error{e.err, e.errno} }

// toWASI returns err with the errno an engine should report for it.
func toWASI(err error) error {
	if err == nil {
		return nil
	}
	var e *Error
	if !errors.As(err, &e) {
		return &wasiError{err, syscall.EIO}
	}
	var errno syscall.Errno
	if errors.As(e.Err, &errno) && e.Class != ErrQuota {
		return err
	}
	switch e.Class {
	case ErrNotFound:
		errno = syscall.ENOENT
	case ErrPermission:
		errno = syscall.EPERM
		if e.Reason == ReasonReadOnly {
			errno = syscall.EROFS
		}
	case ErrExist:
		errno = syscall.EEXIST
	case ErrInvalidPath:
		errno = syscall.EINVAL
		switch e.Reason {
		case ReasonIsDir:
			errno = syscall.EISDIR
		case ReasonNotDir:
			errno = syscall.ENOTDIR
		}
	default:
		// Quotas, timeouts, the end of the step and what is only
		// temporarily unavailable: WASI preview1 as engines implement it
		// has no better number. Not EINTR or EAGAIN, which guests retry at
		// once.
		errno = syscall.EIO
	}
	return &wasiError{err, errno}
}

// refuse fails a WASI operation on a name that did not pass the checks.
func (w *wasiFS) refuse(opName, name string, pr *problem) error {
	o := &op{s: w.s, name: opName, path: guestJoin(w.g.GuestPath, name), g: w.g, stepCtx: w.s.ctx, start: time.Now(), via: "wasi"}
	return toWASI(o.refuse(pr.class, pr.Detail))
}

// begin checks name and starts an operation on it.
func (w *wasiFS) begin(opName, name string, write bool) (*op, bool, error) {
	rel, slash, pr := checkRel(name)
	if pr != nil {
		return nil, false, w.refuse(opName, name, pr)
	}
	o, err := w.s.beginRel(opName, w.g, rel, write)
	if err != nil {
		return nil, false, toWASI(err)
	}
	o.via = "wasi"
	return o, slash, nil
}

func (w *wasiFS) stat(name string, follow bool) (fs.FileInfo, error) {
	o, _, err := w.begin("stat", name, false)
	if err != nil {
		return nil, err
	}
	o.quiet = true
	root := w.g.root
	info, err := call(w.s, o.ctx, &o.tr, func() (fs.FileInfo, error) {
		if follow {
			return root.Stat(o.rel)
		}
		return root.Lstat(o.rel)
	}, nil)
	if err != nil {
		return nil, toWASI(o.end(err))
	}
	return info, o.end(nil)
}

// Stat implements engine.DirFS.
func (w *wasiFS) Stat(name string) (fs.FileInfo, error) { return w.stat(name, true) }

// Lstat implements engine.DirFS.
func (w *wasiFS) Lstat(name string) (fs.FileInfo, error) { return w.stat(name, false) }

// Readlink implements engine.DirFS.
func (w *wasiFS) Readlink(name string) (string, error) {
	o, _, err := w.begin("readlink", name, false)
	if err != nil {
		return "", err
	}
	o.quiet = true
	target, err := call(w.s, o.ctx, &o.tr, func() (string, error) { return w.g.root.Readlink(o.rel) }, nil)
	return target, toWASI(o.end(err))
}

// Mkdir implements engine.DirFS; the guest's permission bits are ignored.
func (w *wasiFS) Mkdir(name string, _ fs.FileMode) error {
	o, _, err := w.begin("mkdir", name, true)
	if err != nil {
		return err
	}
	if o.rel == "." {
		return toWASI(o.refuse(ErrExist, "the granted directory exists"))
	}
	if err := o.checkFile(); err != nil {
		return toWASI(err)
	}
	if err := call0(w.s, o.ctx, &o.tr, func() error { return w.g.root.Mkdir(o.rel, dirMode) }); err != nil {
		return toWASI(o.end(err))
	}
	o.created()
	return o.end(nil)
}

// Rmdir implements engine.DirFS.
func (w *wasiFS) Rmdir(name string) error { return w.remove("rmdir", name, true) }

// Unlink implements engine.DirFS.
func (w *wasiFS) Unlink(name string) error { return w.remove("unlink", name, false) }

func (w *wasiFS) remove(opName, name string, dir bool) error {
	o, _, err := w.begin(opName, name, true)
	if err != nil {
		return err
	}
	if o.rel == "." {
		return toWASI(o.refuse(ErrPermission, "the granted directory itself cannot be removed"))
	}
	root := w.g.root
	err = call0(w.s, o.ctx, &o.tr, func() error {
		info, err := root.Lstat(o.rel)
		if err != nil {
			return err
		}
		switch {
		case dir && !info.IsDir():
			return &os.PathError{Op: opName, Path: o.rel, Err: syscall.ENOTDIR}
		case !dir && info.IsDir():
			return &os.PathError{Op: opName, Path: o.rel, Err: syscall.EISDIR}
		}
		return root.Remove(o.rel)
	})
	return toWASI(o.end(err))
}

// Rename implements engine.DirFS.
func (w *wasiFS) Rename(oldname, newname string) error {
	o, _, err := w.begin("rename", oldname, true)
	if err != nil {
		return err
	}
	rel, _, pr := checkRel(newname)
	switch {
	case pr != nil:
		return toWASI(o.refuse(pr.class, "new name: "+pr.Detail))
	case o.rel == "." || rel == ".":
		return toWASI(o.refuse(ErrPermission, "the granted directory itself cannot be renamed or replaced"))
	}
	root := w.g.root
	return toWASI(o.end(call0(w.s, o.ctx, &o.tr, func() error {
		// os.Root.Rename refuses any existing directory as the new name;
		// POSIX, and WASI, replace an empty one with a directory.
		if to, err := root.Lstat(rel); err == nil && to.IsDir() {
			from, err := root.Lstat(o.rel)
			switch {
			case err != nil:
				return err
			case !from.IsDir():
				return &os.PathError{Op: "rename", Path: rel, Err: syscall.EISDIR}
			case os.SameFile(from, to):
				return nil
			}
			if err := root.Remove(rel); err != nil {
				return err
			}
		}
		return root.Rename(o.rel, rel)
	})))
}

// OpenFile implements engine.DirFS.
func (w *wasiFS) OpenFile(name string, flag engine.OpenFlag, _ fs.FileMode) (engine.DirFile, error) {
	write := flag&(engine.OpenWrite|engine.OpenAppend|engine.OpenCreate|engine.OpenTruncate) != 0
	o, slash, err := w.begin("open", name, write)
	if err != nil {
		return nil, err
	}
	o.quiet = true
	var f *wasiFile
	if write {
		f, err = w.openWrite(o, flag)
	} else {
		f, err = w.openRead(o, flag, slash)
	}
	if err != nil {
		return nil, toWASI(o.end(err))
	}
	o.end(nil)
	return f, nil
}

func (w *wasiFS) openRead(o *op, flag engine.OpenFlag, slash bool) (*wasiFile, error) {
	root := w.g.root
	info, err := call(w.s, o.ctx, &o.tr, func() (fs.FileInfo, error) {
		if flag&engine.OpenNoFollow != 0 {
			return root.Lstat(o.rel)
		}
		return root.Stat(o.rel)
	}, nil)
	if err != nil {
		return nil, err
	}
	m := info.Mode()
	switch {
	case m&fs.ModeSymlink != 0:
		return nil, &os.PathError{Op: "open", Path: o.rel, Err: syscall.ELOOP}
	case (slash || flag&engine.OpenDirectory != 0) && !m.IsDir():
		return nil, o.refuseFor(ErrInvalidPath, ReasonNotDir)
	case m&(fs.ModeDevice|fs.ModeCharDevice|fs.ModeSocket|fs.ModeIrregular) != 0:
		return nil, o.refuse(ErrPermission, "not a regular file: devices and sockets are never opened")
	}
	f, err := call(w.s, o.ctx, &o.tr, func() (*os.File, error) { return root.Open(o.rel) }, closeFile)
	if err != nil {
		return nil, err
	}
	wf := &wasiFile{w: w, rel: o.rel, path: o.path, f: f, canRead: true, opened: o.start}
	// Check what was opened, not only what the name was a moment before.
	info, err = call(w.s, o.ctx, &wf.tr, f.Stat, nil)
	if err == nil && info.Mode()&(fs.ModeDevice|fs.ModeCharDevice|fs.ModeSocket|fs.ModeIrregular) != 0 {
		err = o.refuse(ErrPermission, "not a regular file: devices and sockets are never opened")
	}
	if err != nil {
		w.s.later(&wf.tr, func() { f.Close() })
		return nil, err
	}
	return wf, nil
}

func (w *wasiFS) openWrite(o *op, flag engine.OpenFlag) (*wasiFile, error) {
	if o.rel == "." || flag&engine.OpenDirectory != 0 {
		return nil, o.refuseFor(ErrInvalidPath, ReasonIsDir)
	}
	root := w.g.root
	info, err := call(w.s, o.ctx, &o.tr, func() (fs.FileInfo, error) { return root.Lstat(o.rel) }, nil)
	exists := err == nil
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	create, excl := flag&engine.OpenCreate != 0, flag&engine.OpenExclusive != 0
	switch {
	case exists && info.IsDir():
		return nil, o.refuseFor(ErrInvalidPath, ReasonIsDir)
	case exists && create && excl:
		return nil, o.refuse(ErrExist, "the file exists")
	case !exists && !create:
		return nil, &os.PathError{Op: "open", Path: o.rel, Err: syscall.ENOENT}
	}
	wf := &wasiFile{w: w, rel: o.rel, path: o.path, opened: o.start,
		canRead:  flag&engine.OpenRead != 0,
		canWrite: true,
		append:   flag&engine.OpenAppend != 0,
	}
	if !exists {
		// Created in place, so that the name exists while the guest writes,
		// as WASI requires; if the writing fails or the step does not
		// finish, Close removes the file again.
		if err := o.checkFile(); err != nil {
			return nil, err
		}
		mode := os.O_WRONLY | os.O_CREATE | os.O_EXCL
		if wf.canRead {
			mode = os.O_RDWR | os.O_CREATE | os.O_EXCL
		}
		if wf.append {
			mode |= os.O_APPEND
		}
		f, err := call(w.s, o.ctx, &o.tr, func() (*os.File, error) { return root.OpenFile(o.rel, mode, fileMode) }, closeFile)
		if err != nil {
			return nil, err
		}
		o.created()
		wf.f, wf.createdNew = f, true
		return wf, nil
	}
	if flag&engine.OpenTruncate != 0 {
		// Staged: the guest writes a new file, which replaces the old one
		// when it is closed.
		st, err := o.stage(create && excl)
		if err != nil {
			return nil, err
		}
		st.tr = &wf.tr
		if wf.canRead {
			// The guest may read back what it wrote: reopen the staged
			// file for reading and writing.
			f, err := call(w.s, o.ctx, &wf.tr, func() (*os.File, error) {
				return root.OpenFile(st.tmp, os.O_RDWR, 0)
			}, closeFile)
			if err != nil {
				st.discard()
				return nil, err
			}
			st.f.Close()
			st.f = f
		}
		wf.st, wf.f = st, st.f
		wf.exclusive = create && excl
		if wf.append {
			if err := setAppend(st.f, true); err != nil {
				st.discard()
				return nil, err
			}
		}
		return wf, nil
	}
	// In place, through links that stay inside the grant.
	mode := os.O_WRONLY
	if wf.canRead {
		mode = os.O_RDWR
	}
	if wf.append {
		mode |= os.O_APPEND
	}
	f, err := call(w.s, o.ctx, &o.tr, func() (*os.File, error) { return root.OpenFile(o.rel, mode, 0) }, closeFile)
	if err != nil {
		return nil, err
	}
	wf.f = f
	info, err = call(w.s, o.ctx, &wf.tr, f.Stat, nil)
	if err == nil && !info.Mode().IsRegular() {
		err = o.refuse(ErrInvalidPath, "not a regular file")
	}
	if err != nil {
		w.s.later(&wf.tr, func() { f.Close() })
		return nil, err
	}
	return wf, nil
}

// wasiFile is a file or directory a WASI guest opened.
type wasiFile struct {
	w    *wasiFS
	rel  string
	path string
	f    *os.File
	st   *staged // for a staged write

	canRead, canWrite, append, exclusive bool
	// createdNew is set when the open created the file in place.
	createdNew bool
	opened     time.Time

	mu sync.Mutex // guards what follows; a guest may share a file between threads
	tr tracker
	// broken is set once an operation on the file was abandoned, or a
	// write to it failed: the file is not used again, and a staged write
	// is not committed.
	broken  bool
	closed  bool
	read    int64
	written int64
	buf     []byte
}

// do runs one operation on the file's descriptor.
func (f *wasiFile) do(opName string, write bool, fn func(o *op) error) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return &wasiError{os.ErrClosed, syscall.EBADF}
	}
	if f.broken {
		return &wasiError{errors.New("fscap: an earlier operation on this file failed or was abandoned"), syscall.EIO}
	}
	o, err := f.w.s.beginRel(opName, f.w.g, f.rel, write)
	if err != nil {
		return toWASI(err)
	}
	o.quiet, o.via = true, "wasi"
	err = fn(o)
	if f.tr.pending != nil || (err != nil && write) {
		f.broken = true
	}
	return toWASI(o.end(err))
}

// scratch returns a buffer of n bytes for the kernel to read into or write
// from: guest memory is never handed to a call that may be abandoned.
func (f *wasiFile) scratch(n int) []byte {
	n = min(n, chunkSize)
	if cap(f.buf) < n {
		f.buf = make([]byte, n)
	}
	return f.buf[:n]
}

func (f *wasiFile) Read(p []byte) (int, error) { return f.readAt(p, -1) }

func (f *wasiFile) ReadAt(p []byte, off int64) (int, error) { return f.readAt(p, off) }

func (f *wasiFile) readAt(p []byte, off int64) (n int, err error) {
	if !f.canRead {
		return 0, &wasiError{os.ErrPermission, syscall.EBADF}
	}
	if len(p) == 0 {
		return 0, nil
	}
	var eof bool
	err = f.do("read", false, func(o *op) error {
		buf := f.scratch(len(p))
		m, err := call(f.w.s, o.ctx, &f.tr, func() (int, error) {
			if off >= 0 {
				return f.f.ReadAt(buf, off)
			}
			return f.f.Read(buf)
		}, nil)
		if f.tr.pending != nil {
			f.buf = nil // the abandoned call still owns it
			return err
		}
		n = copy(p, buf[:m])
		f.read += int64(n)
		o.bytes = int64(n)
		if err == io.EOF {
			eof = true
			return nil
		}
		return err
	})
	if eof && err == nil {
		return n, io.EOF
	}
	return n, err
}

func (f *wasiFile) Write(p []byte) (int, error) { return f.writeAt(p, -1) }

func (f *wasiFile) WriteAt(p []byte, off int64) (int, error) { return f.writeAt(p, off) }

// errOverSize is returned inside a write's call when the file would grow
// past the grant's largest file.
var errOverSize = errors.New("fscap: file would grow past the quota")

func (f *wasiFile) writeAt(p []byte, off int64) (n int, err error) {
	if !f.canWrite {
		return 0, &wasiError{os.ErrPermission, syscall.EBADF}
	}
	for len(p) > 0 {
		var m int
		err = f.do("write", true, func(o *op) error {
			chunk := f.scratch(len(p))
			copy(chunk, p)
			if err := o.reserveBytes(int64(len(chunk))); err != nil {
				return err
			}
			limit := f.w.g.Quota.FileSize
			var werr error
			m, werr = call(f.w.s, o.ctx, &f.tr, func() (int, error) {
				end := off
				if end < 0 {
					pos, err := f.f.Seek(0, io.SeekCurrent)
					if err != nil {
						return 0, err
					}
					end = pos
					if f.append {
						info, err := f.f.Stat()
						if err != nil {
							return 0, err
						}
						end = info.Size()
					}
				}
				if end+int64(len(chunk)) > limit {
					return 0, errOverSize
				}
				if off >= 0 {
					return pwrite(f.f, chunk, off)
				}
				return f.f.Write(chunk)
			}, nil)
			if f.tr.pending != nil {
				f.buf = nil
			}
			if errors.Is(werr, errOverSize) {
				return o.quota("files under %q may be at most %s", f.w.g.Name, size(limit))
			}
			f.written += int64(m)
			o.bytes = int64(m)
			return werr
		})
		n += m
		if err != nil {
			return n, err
		}
		p = p[m:]
		if off >= 0 {
			off += int64(m)
		}
	}
	return n, nil
}

func (f *wasiFile) Seek(offset int64, whence int) (pos int64, err error) {
	err = f.do("seek", false, func(o *op) error {
		var err error
		pos, err = call(f.w.s, o.ctx, &f.tr, func() (int64, error) { return f.f.Seek(offset, whence) }, nil)
		return err
	})
	return pos, err
}

func (f *wasiFile) Stat() (info fs.FileInfo, err error) {
	err = f.do("stat", false, func(o *op) error {
		var err error
		info, err = call(f.w.s, o.ctx, &f.tr, f.f.Stat, nil)
		return err
	})
	return info, err
}

// ReadDir lists the directory, leaving out what ReadDir of a Session
// leaves out.
func (f *wasiFile) ReadDir(n int) (out []fs.DirEntry, err error) {
	var eof bool
	err = f.do("list", false, func(o *op) error {
		for n <= 0 || len(out) < n {
			want := 256
			if n > 0 {
				want = n - len(out)
			}
			ents, err := call(f.w.s, o.ctx, &f.tr, func() ([]fs.DirEntry, error) { return f.f.ReadDir(want) }, nil)
			for _, e := range ents {
				if listable(e.Name()) {
					out = append(out, e)
				}
			}
			if err == io.EOF || (err == nil && len(ents) == 0) {
				eof = true
				return nil
			}
			if err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return out, err
	}
	if eof && n > 0 && len(out) == 0 {
		return nil, io.EOF
	}
	return out, nil
}

func (f *wasiFile) Truncate(sz int64) error {
	if !f.canWrite {
		return &wasiError{os.ErrPermission, syscall.EBADF}
	}
	return f.do("truncate", true, func(o *op) error {
		if err := o.checkSize(sz); err != nil {
			return err
		}
		return call0(f.w.s, o.ctx, &f.tr, func() error { return f.f.Truncate(sz) })
	})
}

func (f *wasiFile) Sync() error {
	return f.do("sync", false, func(o *op) error {
		return call0(f.w.s, o.ctx, &f.tr, f.f.Sync)
	})
}

// Close closes the file; a staged write is committed, unless it failed or
// the step is over, and then it is discarded. This is where a WASI guest's
// use of a file is logged: one record per file, with the bytes moved.
func (f *wasiFile) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return nil
	}
	f.closed = true
	s := f.w.s
	opName, moved := "read", f.read
	switch {
	case f.append:
		opName, moved = "append", f.written
	case f.canWrite:
		opName, moved = "write", f.written
	}
	file := f.f
	if f.broken || s.ctx.Err() != nil {
		// Given up: nothing is committed, a file the guest created is
		// removed, and the failure was logged when it happened.
		switch {
		case f.st != nil:
			f.st.discard()
		case f.createdNew:
			root, rel := f.w.g.root, f.rel
			remove := func() error {
				mine, err := file.Stat()
				file.Close()
				if now, lerr := root.Lstat(rel); err == nil && lerr == nil && os.SameFile(mine, now) {
					return root.Remove(rel)
				}
				return nil
			}
			if f.tr.pending != nil {
				s.later(&f.tr, func() { remove() })
				break
			}
			// At once, so that the guest's next look finds no file; bounded
			// by the grant's timeout, not the step's, which may be over.
			ctx, cancel := context.WithTimeout(context.Background(), f.w.g.Timeout)
			call0(s, ctx, &f.tr, remove)
			cancel()
		default:
			s.later(&f.tr, func() { file.Close() })
		}
		return nil
	}
	o, err := s.beginRel(opName, f.w.g, f.rel, f.st != nil)
	if err != nil {
		if f.st != nil {
			f.st.discard()
		} else {
			s.later(&f.tr, func() { file.Close() })
		}
		return toWASI(err)
	}
	o.start, o.bytes, o.via = f.opened, moved, "wasi"
	if f.st == nil {
		return toWASI(o.end(call0(s, o.ctx, &f.tr, file.Close)))
	}
	if err := f.st.commit(o.ctx, f.exclusive); err != nil {
		f.st.discard()
		return toWASI(o.end(err))
	}
	if !f.st.existed {
		o.created()
	}
	return o.end(nil)
}
