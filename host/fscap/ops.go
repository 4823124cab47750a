package fscap

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"io/fs"
	"os"
	"path"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
)

// chunkSize is the most one system call reads or writes. A large read or
// write is a loop of chunks, and the loop stops between chunks as soon as
// the operation's timeout passes or the step ends.
const chunkSize = 1 << 20

// MaxList is the most entries ReadDir returns; a larger directory fails
// with ErrQuota.
const MaxList = 65536

// Modes of what the guest creates. The guest does not choose them: a block
// must not be able to leave executable or world-writable files on the
// host. A replaced file keeps its permission bits.
const (
	fileMode = 0o644
	dirMode  = 0o755
)

// WriteFlag changes what Write does.
type WriteFlag uint32

// WriteExclusive makes Write fail with ErrExist when the file exists.
const WriteExclusive WriteFlag = 1

// ReadAt reads the file name from byte off on: at most max bytes, or to its
// end when max is negative. Each chunk read is passed to sink on the
// calling goroutine, which may copy it elsewhere (guest memory) but must
// not keep it. It returns the number of bytes passed to sink.
//
// A FIFO is read like a file, from its start; devices and sockets are
// refused.
func (s *Session) ReadAt(ctx context.Context, name string, off, max int64, sink func([]byte) error) (int64, error) {
	o, err := s.begin(ctx, "read", name, false)
	if err != nil {
		return 0, err
	}
	n, err := o.read(off, max, sink)
	o.bytes = n
	return n, o.end(err)
}

// ReadFile returns the whole file name, refusing with ErrQuota a file of
// more than max bytes.
func (s *Session) ReadFile(ctx context.Context, name string, max int64) ([]byte, error) {
	var buf bytes.Buffer
	o, err := s.begin(ctx, "read", name, false)
	if err != nil {
		return nil, err
	}
	n, err := o.read(0, max+1, func(p []byte) error { _, err := buf.Write(p); return err })
	o.bytes = n
	if err == nil && n > max {
		err = o.refuse(ErrQuota, "the file is larger than "+size(max))
	}
	if err != nil {
		return nil, o.end(err)
	}
	return buf.Bytes(), o.end(nil)
}

func (o *op) read(off, max int64, sink func([]byte) error) (int64, error) {
	if off < 0 {
		return 0, o.refuse(ErrInvalidPath, "negative offset")
	}
	root := o.g.root
	info, err := call(o.s, o.ctx, &o.tr, func() (fs.FileInfo, error) { return root.Stat(o.rel) }, nil)
	if err != nil {
		return 0, err
	}
	if err := o.readable(info); err != nil {
		return 0, err
	}
	f, err := call(o.s, o.ctx, &o.tr, func() (*os.File, error) { return root.Open(o.rel) }, closeFile)
	if err != nil {
		return 0, err
	}
	defer o.s.later(&o.tr, func() { f.Close() })
	// The name was checked before it was opened; check what was opened.
	if info, err = call(o.s, o.ctx, &o.tr, f.Stat, nil); err != nil {
		return 0, err
	}
	if err := o.readable(info); err != nil {
		return 0, err
	}
	if off > 0 {
		if _, err := call(o.s, o.ctx, &o.tr, func() (int64, error) { return f.Seek(off, io.SeekStart) }, nil); err != nil {
			return 0, err
		}
	}
	bufSize := int64(chunkSize)
	if max >= 0 && max < bufSize {
		bufSize = max
	}
	if info.Mode().IsRegular() && info.Size()-off+1 < bufSize {
		bufSize = max64(info.Size()-off+1, 512)
	}
	buf := make([]byte, bufSize)
	var total int64
	for max < 0 || total < max {
		if err := o.ctx.Err(); err != nil {
			return total, err
		}
		want := int64(len(buf))
		if max >= 0 {
			want = min(want, max-total)
		}
		n, err := call(o.s, o.ctx, &o.tr, func() (int, error) { return f.Read(buf[:want]) }, nil)
		if n > 0 {
			if serr := sink(buf[:n]); serr != nil {
				return total, serr
			}
			total += int64(n)
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return total, err
		}
	}
	return total, nil
}

// readable refuses what a read must not open.
func (o *op) readable(info fs.FileInfo) error {
	m := info.Mode()
	switch {
	case m.IsDir():
		return o.refuseFor(ErrInvalidPath, ReasonIsDir)
	case m&(fs.ModeDevice|fs.ModeCharDevice|fs.ModeSocket|fs.ModeIrregular) != 0:
		return o.refuse(ErrPermission, "not a regular file: devices and sockets are never opened")
	}
	return nil
}

func closeFile(f *os.File) { f.Close() }

func max64(a, b int64) int64 {
	if a > b {
		return a
	}
	return b
}

// Write replaces the file name with what src yields, atomically: the data
// goes to a new file in the same directory, which is renamed over name
// only once all of it is written and synced. A write that fails, times
// out or is cut short by the end of the step leaves name as it was. size
// is the number of bytes src will yield, or -1 when unknown; when known,
// quotas are checked before anything is written.
//
// A symbolic link at name is replaced, not written through. A replaced
// file keeps its permission bits; a new one gets 0644.
func (s *Session) Write(ctx context.Context, name string, src io.Reader, size int64, flag WriteFlag) (int64, error) {
	o, err := s.begin(ctx, "write", name, true)
	if err != nil {
		return 0, err
	}
	n, err := o.write(src, size, flag)
	o.bytes = n
	return n, o.end(err)
}

// WriteFile is Write of data.
func (s *Session) WriteFile(ctx context.Context, name string, data []byte, flag WriteFlag) error {
	_, err := s.Write(ctx, name, bytes.NewReader(data), int64(len(data)), flag)
	return err
}

func (o *op) write(src io.Reader, size int64, flag WriteFlag) (int64, error) {
	if o.rel == "." {
		return 0, o.refuse(ErrInvalidPath, "is the granted directory itself")
	}
	if size >= 0 {
		if err := o.checkSize(size); err != nil {
			return 0, err
		}
		if err := o.checkBytes(size); err != nil {
			return 0, err
		}
	}
	exclusive := flag&WriteExclusive != 0
	st, err := o.stage(exclusive)
	if err != nil {
		return 0, err
	}
	bufSize := int64(chunkSize)
	if size >= 0 && size < bufSize {
		bufSize = max64(size, 512)
	}
	buf := make([]byte, bufSize)
	var total int64
	for {
		if err := o.ctx.Err(); err != nil {
			st.discard()
			return total, err
		}
		n, rerr := io.ReadFull(src, buf)
		if n > 0 {
			if err := o.checkSize(total + int64(n)); err != nil {
				st.discard()
				return total, err
			}
			if err := o.reserveBytes(int64(n)); err != nil {
				st.discard()
				return total, err
			}
			if err := st.write(o.ctx, buf[:n]); err != nil {
				st.discard()
				return total, err
			}
			total += int64(n)
		}
		if rerr == io.EOF || rerr == io.ErrUnexpectedEOF {
			break
		}
		if rerr != nil {
			st.discard()
			if o.ctx.Err() != nil {
				return total, o.ctx.Err()
			}
			return total, &Error{Class: ErrIO, Detail: "reading the data to write: " + rerr.Error(), Err: rerr}
		}
	}
	if err := st.commit(o.ctx, exclusive); err != nil {
		st.discard()
		return total, err
	}
	if !st.existed {
		o.created()
	}
	return total, nil
}

// staged is a write in progress: a temporary file beside its destination.
type staged struct {
	s       *Session
	g       *grant
	rel     string
	tmp     string
	f       *os.File
	existed bool
	perm    fs.FileMode
	tr      *tracker
	// abort is set once the write is given up: an abandoned commit that
	// comes back checks it before it renames anything into place.
	abort atomic.Bool
}

var errAborted = errors.New("fscap: write given up")

// stage creates the temporary file for a write to o's name.
func (o *op) stage(exclusive bool) (*staged, error) {
	root := o.g.root
	info, err := call(o.s, o.ctx, &o.tr, func() (fs.FileInfo, error) { return root.Lstat(o.rel) }, nil)
	st := &staged{s: o.s, g: o.g, rel: o.rel, perm: fileMode, tr: &o.tr}
	switch {
	case err == nil:
		st.existed = true
		if info.IsDir() {
			return nil, o.refuseFor(ErrInvalidPath, ReasonIsDir)
		}
		if info.Mode()&fs.ModeSymlink != 0 {
			// A write replaces a file; it cannot follow a link and stay
			// atomic, and replacing the link instead would surprise.
			_, serr := call(o.s, o.ctx, &o.tr, func() (fs.FileInfo, error) { return root.Stat(o.rel) }, nil)
			if serr != nil && errEscape != nil && errors.Is(serr, errEscape) {
				return nil, o.refuse(ErrPermission, "the path leads out of the granted directory")
			}
			return nil, o.refuse(ErrPermission, "is a symbolic link: a write replaces a file and does not follow links")
		}
		if exclusive {
			return nil, o.refuse(ErrExist, "the file exists")
		}
		if info.Mode().IsRegular() {
			st.perm = info.Mode().Perm()
		}
	case errors.Is(err, fs.ErrNotExist):
		if err := o.checkFile(); err != nil {
			return nil, err
		}
	default:
		return nil, err
	}
	st.tmp = path.Join(path.Dir(o.rel), tempPrefix+randomHex())
	st.f, err = call(o.s, o.ctx, &o.tr, func() (*os.File, error) {
		return root.OpenFile(st.tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	}, func(f *os.File) { f.Close(); root.Remove(st.tmp) })
	if err != nil {
		return nil, err
	}
	return st, nil
}

func (st *staged) write(ctx context.Context, p []byte) error {
	return call0(st.s, ctx, st.tr, func() error {
		if st.abort.Load() {
			return errAborted
		}
		_, err := st.f.Write(p)
		return err
	})
}

// commit syncs the temporary file and renames it into place; exclusive
// makes it fail if the destination appeared meanwhile.
func (st *staged) commit(ctx context.Context, exclusive bool) error {
	root := st.g.root
	return call0(st.s, ctx, st.tr, func() error {
		for _, step := range []func() error{
			func() error { return st.f.Chmod(st.perm) },
			st.f.Sync,
			st.f.Close,
		} {
			if st.abort.Load() {
				return errAborted
			}
			if err := step(); err != nil {
				return err
			}
		}
		if st.abort.Load() {
			return errAborted
		}
		if !exclusive {
			return root.Rename(st.tmp, st.rel)
		}
		// A hard link fails if the destination exists, which a rename
		// would not. Where the file system has no hard links, check first.
		err := root.Link(st.tmp, st.rel)
		if errors.Is(err, syscall.EPERM) || errors.Is(err, syscall.ENOTSUP) || errors.Is(err, syscall.EMLINK) {
			if _, lerr := root.Lstat(st.rel); lerr == nil {
				return &os.PathError{Op: "link", Path: st.rel, Err: syscall.EEXIST}
			}
			return root.Rename(st.tmp, st.rel)
		}
		if err != nil {
			return err
		}
		root.Remove(st.tmp)
		return nil
	})
}

// discard gives the write up: the temporary file is closed and removed in
// the background, once any abandoned call on it has returned.
func (st *staged) discard() {
	st.abort.Store(true)
	root := st.g.root
	st.s.later(st.tr, func() {
		st.f.Close()
		root.Remove(st.tmp)
	})
}

func randomHex() string {
	var b [8]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Append adds what src yields to the end of the file name, creating it if
// it does not exist. A failed append is undone: the file is cut back to
// its old size, or removed if the append created it. size is as for Write.
func (s *Session) Append(ctx context.Context, name string, src io.Reader, size int64) (int64, error) {
	o, err := s.begin(ctx, "append", name, true)
	if err != nil {
		return 0, err
	}
	n, err := o.append(src, size)
	o.bytes = n
	return n, o.end(err)
}

func (o *op) append(src io.Reader, size int64) (int64, error) {
	if o.rel == "." {
		return 0, o.refuse(ErrInvalidPath, "is the granted directory itself")
	}
	if size >= 0 {
		if err := o.checkBytes(size); err != nil {
			return 0, err
		}
	}
	root := o.g.root
	info, err := call(o.s, o.ctx, &o.tr, func() (fs.FileInfo, error) { return root.Stat(o.rel) }, nil)
	existed := err == nil
	flags := os.O_WRONLY | os.O_APPEND
	switch {
	case existed:
		if !info.Mode().IsRegular() {
			return 0, o.refuse(ErrInvalidPath, "not a regular file")
		}
	case errors.Is(err, fs.ErrNotExist):
		if err := o.checkFile(); err != nil {
			return 0, err
		}
		flags |= os.O_CREATE | os.O_EXCL
	default:
		return 0, err
	}
	f, err := call(o.s, o.ctx, &o.tr, func() (*os.File, error) { return root.OpenFile(o.rel, flags, fileMode) }, closeFile)
	if err != nil {
		return 0, err
	}
	if info, err = call(o.s, o.ctx, &o.tr, f.Stat, nil); err != nil {
		o.s.later(&o.tr, func() { f.Close() })
		return 0, err
	}
	if !info.Mode().IsRegular() {
		o.s.later(&o.tr, func() { f.Close() })
		return 0, o.refuse(ErrInvalidPath, "not a regular file")
	}
	orig := info.Size()
	var aborted atomic.Bool
	undo := func() {
		aborted.Store(true)
		rel := o.rel
		o.s.later(&o.tr, func() {
			if existed {
				f.Truncate(orig)
			} else {
				root.Remove(rel)
			}
			f.Close()
		})
	}
	if size >= 0 {
		if err := o.checkSize(orig + size); err != nil {
			undo()
			return 0, err
		}
	}
	bufSize := int64(chunkSize)
	if size >= 0 && size < bufSize {
		bufSize = max64(size, 512)
	}
	buf := make([]byte, bufSize)
	var total int64
	for {
		if err := o.ctx.Err(); err != nil {
			undo()
			return total, err
		}
		n, rerr := io.ReadFull(src, buf)
		if n > 0 {
			if err := o.checkSize(orig + total + int64(n)); err != nil {
				undo()
				return total, err
			}
			if err := o.reserveBytes(int64(n)); err != nil {
				undo()
				return total, err
			}
			chunk := buf[:n]
			err := call0(o.s, o.ctx, &o.tr, func() error {
				if aborted.Load() {
					return errAborted
				}
				_, err := f.Write(chunk)
				return err
			})
			if err != nil {
				undo()
				return total, err
			}
			total += int64(n)
		}
		if rerr == io.EOF || rerr == io.ErrUnexpectedEOF {
			break
		}
		if rerr != nil {
			undo()
			if o.ctx.Err() != nil {
				return total, o.ctx.Err()
			}
			return total, &Error{Class: ErrIO, Detail: "reading the data to append: " + rerr.Error(), Err: rerr}
		}
	}
	if err := call0(o.s, o.ctx, &o.tr, func() error {
		if err := f.Sync(); err != nil {
			return err
		}
		return f.Close()
	}); err != nil {
		undo()
		return total, err
	}
	if !existed {
		o.created()
	}
	return total, nil
}

// Stat describes the file or directory name, following symbolic links
// that stay inside the grant.
//
// A guest path above the grants and inside none, such as "/" when the only
// grant is "/data", is a read-only virtual directory.
func (s *Session) Stat(ctx context.Context, name string) (fs.FileInfo, error) {
	if info, ok := s.statVirtual(ctx, name); ok {
		return info, nil
	}
	o, err := s.begin(ctx, "stat", name, false)
	if err != nil {
		return nil, err
	}
	info, err := call(s, o.ctx, &o.tr, func() (fs.FileInfo, error) { return o.g.root.Stat(o.rel) }, nil)
	if err != nil {
		return nil, o.end(err)
	}
	return info, o.end(nil)
}

// ReadDir lists the directory name, sorted by name. Entries whose names
// are not valid guest path elements, and writes in progress, are left out.
//
// A virtual directory above the grants (see Stat) lists the next element
// of each grant's guest path.
func (s *Session) ReadDir(ctx context.Context, name string) ([]fs.DirEntry, error) {
	if ents, ok := s.listVirtual(ctx, name); ok {
		return ents, nil
	}
	o, err := s.begin(ctx, "list", name, false)
	if err != nil {
		return nil, err
	}
	ents, err := o.list()
	return ents, o.end(err)
}

func (o *op) list() ([]fs.DirEntry, error) {
	root := o.g.root
	f, err := call(o.s, o.ctx, &o.tr, func() (*os.File, error) { return root.Open(o.rel) }, closeFile)
	if err != nil {
		return nil, err
	}
	defer o.s.later(&o.tr, func() { f.Close() })
	info, err := call(o.s, o.ctx, &o.tr, f.Stat, nil)
	if err != nil {
		return nil, err
	}
	if !info.IsDir() {
		return nil, o.refuseFor(ErrInvalidPath, ReasonNotDir)
	}
	var out []fs.DirEntry
	for {
		if err := o.ctx.Err(); err != nil {
			return nil, err
		}
		ents, err := call(o.s, o.ctx, &o.tr, func() ([]fs.DirEntry, error) { return f.ReadDir(1024) }, nil)
		for _, e := range ents {
			if listable(e.Name()) {
				out = append(out, e)
			}
		}
		if len(out) > MaxList {
			return nil, o.refuse(ErrQuota, "the directory has more than 65536 entries")
		}
		if err == io.EOF || (err == nil && len(ents) == 0) {
			break
		}
		if err != nil {
			return nil, err
		}
	}
	slices.SortFunc(out, func(a, b fs.DirEntry) int { return strings.Compare(a.Name(), b.Name()) })
	o.bytes = int64(len(out))
	return out, nil
}

// Remove removes the file or empty directory name. A symbolic link is
// removed itself, never what it points to.
func (s *Session) Remove(ctx context.Context, name string) error {
	o, err := s.begin(ctx, "remove", name, true)
	if err != nil {
		return err
	}
	if o.rel == "." {
		return o.refuse(ErrPermission, "the granted directory itself cannot be removed")
	}
	return o.end(call0(s, o.ctx, &o.tr, func() error { return o.g.root.Remove(o.rel) }))
}

// Mkdir creates the directory name; its parent must exist.
func (s *Session) Mkdir(ctx context.Context, name string) error {
	o, err := s.begin(ctx, "mkdir", name, true)
	if err != nil {
		return err
	}
	if o.rel == "." {
		return o.refuse(ErrExist, "the granted directory exists")
	}
	if err := o.checkFile(); err != nil {
		return err
	}
	if err := call0(s, o.ctx, &o.tr, func() error { return o.g.root.Mkdir(o.rel, dirMode) }); err != nil {
		return o.end(err)
	}
	o.created()
	return o.end(nil)
}

// Rename moves oldname to newname, replacing a file there. Both must be in
// the same grant.
func (s *Session) Rename(ctx context.Context, oldname, newname string) error {
	o, err := s.begin(ctx, "rename", oldname, true)
	if err != nil {
		return err
	}
	g, rel, pr := s.lookup(newname)
	switch {
	case pr != nil:
		return o.refuse(pr.class, "new name: "+pr.Detail)
	case g != o.g:
		return o.refuse(ErrPermission, "a rename must stay inside one granted directory")
	case o.rel == "." || rel == ".":
		return o.refuse(ErrPermission, "the granted directory itself cannot be renamed or replaced")
	}
	return o.end(call0(s, o.ctx, &o.tr, func() error { return o.g.root.Rename(o.rel, rel) }))
}
