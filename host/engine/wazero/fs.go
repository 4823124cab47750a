package wazero

import (
	"errors"
	"io"
	"io/fs"
	"syscall"
	"time"

	"github.com/tetratelabs/wazero"
	experimentalsys "github.com/tetratelabs/wazero/experimental/sys"
	"github.com/tetratelabs/wazero/experimental/sysfs"
	"github.com/tetratelabs/wazero/sys"

	"github.com/blockhost/blockhost/host/engine"
)

// WASI preopened directories. wazero's own directory mount (sysfs.DirFS)
// resolves names with plain path joins, so a symbolic link in the mount
// leads a guest anywhere on the host, even read-only. The engine never
// uses it: each engine.Dir's FS, which keeps a guest inside the directory,
// is adapted to wazero's experimental file system interface and mounted
// with WithSysFSMount. The FS alone enforces read-only directories, so that
// every refusal reaches it, gets its EROFS and is logged; wazero's
// sysfs.ReadFS would refuse a write open with ENOSYS, unseen.

// fsConfig mounts dirs, or returns nil when there are none.
func fsConfig(dirs []engine.Dir) wazero.FSConfig {
	if len(dirs) == 0 {
		return nil
	}
	cfg := wazero.NewFSConfig()
	for _, d := range dirs {
		cfg = cfg.(sysfs.FSConfig).WithSysFSMount(&dirFS{fs: d.FS}, d.GuestPath)
	}
	return cfg
}

// errno turns an engine.DirFS error into wazero's error number.
func errno(err error) experimentalsys.Errno {
	if err == nil {
		return 0
	}
	var e syscall.Errno
	if errors.As(err, &e) {
		return experimentalsys.UnwrapOSError(e)
	}
	switch {
	case errors.Is(err, io.EOF):
		return 0
	case errors.Is(err, fs.ErrNotExist):
		return experimentalsys.ENOENT
	case errors.Is(err, fs.ErrPermission):
		return experimentalsys.EPERM
	case errors.Is(err, fs.ErrExist):
		return experimentalsys.EEXIST
	case errors.Is(err, fs.ErrInvalid):
		return experimentalsys.EINVAL
	case errors.Is(err, fs.ErrClosed):
		return experimentalsys.EBADF
	}
	return experimentalsys.EIO
}

// dirFS adapts an engine.DirFS to wazero.
type dirFS struct {
	experimentalsys.UnimplementedFS
	fs engine.DirFS
}

var _ experimentalsys.FS = (*dirFS)(nil)

func (d *dirFS) OpenFile(name string, flag experimentalsys.Oflag, perm fs.FileMode) (experimentalsys.File, experimentalsys.Errno) {
	var f engine.OpenFlag
	switch flag & (experimentalsys.O_RDONLY | experimentalsys.O_RDWR | experimentalsys.O_WRONLY) {
	case experimentalsys.O_RDWR:
		f = engine.OpenRead | engine.OpenWrite
	case experimentalsys.O_WRONLY:
		f = engine.OpenWrite
	default:
		f = engine.OpenRead
	}
	for _, m := range []struct {
		sys experimentalsys.Oflag
		eng engine.OpenFlag
	}{
		{experimentalsys.O_APPEND, engine.OpenAppend},
		{experimentalsys.O_CREAT, engine.OpenCreate},
		{experimentalsys.O_EXCL, engine.OpenExclusive},
		{experimentalsys.O_TRUNC, engine.OpenTruncate},
		{experimentalsys.O_DIRECTORY, engine.OpenDirectory},
		{experimentalsys.O_NOFOLLOW, engine.OpenNoFollow},
	} {
		if flag&m.sys != 0 {
			f |= m.eng
		}
	}
	file, err := d.fs.OpenFile(name, f, perm)
	if err != nil {
		if name == "." || name == "" {
			// wazero opens a preopen's root lazily and panics on anything
			// but ENOENT; a root it cannot open is, to the guest, absent.
			return nil, experimentalsys.ENOENT
		}
		return nil, errno(err)
	}
	return &dirFile{File: seekVia(file), f: file, append: f&engine.OpenAppend != 0}, 0
}

func (d *dirFS) Stat(name string) (sys.Stat_t, experimentalsys.Errno) {
	info, err := d.fs.Stat(name)
	if err != nil {
		return sys.Stat_t{}, errno(err)
	}
	return sys.NewStat_t(info), 0
}

func (d *dirFS) Lstat(name string) (sys.Stat_t, experimentalsys.Errno) {
	info, err := d.fs.Lstat(name)
	if err != nil {
		return sys.Stat_t{}, errno(err)
	}
	return sys.NewStat_t(info), 0
}

func (d *dirFS) Mkdir(name string, perm fs.FileMode) experimentalsys.Errno {
	return errno(d.fs.Mkdir(name, perm))
}

func (d *dirFS) Rename(from, to string) experimentalsys.Errno { return errno(d.fs.Rename(from, to)) }
func (d *dirFS) Rmdir(name string) experimentalsys.Errno      { return errno(d.fs.Rmdir(name)) }
func (d *dirFS) Unlink(name string) experimentalsys.Errno     { return errno(d.fs.Unlink(name)) }

func (d *dirFS) Readlink(name string) (string, experimentalsys.Errno) {
	target, err := d.fs.Readlink(name)
	return target, errno(err)
}

// Link, Symlink, Chmod and Utimens stay unimplemented (ENOSYS): a guest
// creates no links and sets no permissions or times.

// dirFile adapts an engine.DirFile to wazero. It declares every method of
// experimentalsys.File but Seek, which comes from the embedded File (see
// seekVia), and Utimens, which stays unimplemented.
type dirFile struct {
	experimentalsys.File
	f      engine.DirFile
	append bool
	st     *sys.Stat_t // cached for Dev, Ino and IsDir
}

var _ experimentalsys.File = (*dirFile)(nil)

func (f *dirFile) stat() (*sys.Stat_t, experimentalsys.Errno) {
	if f.st == nil {
		info, err := f.f.Stat()
		if err != nil {
			return nil, errno(err)
		}
		st := sys.NewStat_t(info)
		f.st = &st
	}
	return f.st, 0
}

func (f *dirFile) Dev() (uint64, experimentalsys.Errno) {
	st, e := f.stat()
	if e != 0 {
		return 0, e
	}
	return st.Dev, 0
}

func (f *dirFile) Ino() (sys.Inode, experimentalsys.Errno) {
	st, e := f.stat()
	if e != 0 {
		return 0, e
	}
	return st.Ino, 0
}

func (f *dirFile) IsDir() (bool, experimentalsys.Errno) {
	st, e := f.stat()
	if e != 0 {
		return false, e
	}
	return st.Mode.IsDir(), 0
}

func (f *dirFile) IsAppend() bool { return f.append }

func (f *dirFile) SetAppend(enable bool) experimentalsys.Errno {
	if enable == f.append {
		return 0
	}
	return experimentalsys.ENOSYS
}

func (f *dirFile) Stat() (sys.Stat_t, experimentalsys.Errno) {
	info, err := f.f.Stat()
	if err != nil {
		return sys.Stat_t{}, errno(err)
	}
	return sys.NewStat_t(info), 0
}

func (f *dirFile) Read(buf []byte) (int, experimentalsys.Errno) {
	if len(buf) == 0 {
		return 0, 0
	}
	n, err := f.f.Read(buf)
	return n, errno(err)
}

func (f *dirFile) Pread(buf []byte, off int64) (int, experimentalsys.Errno) {
	if len(buf) == 0 {
		return 0, 0
	}
	n, err := f.f.ReadAt(buf, off)
	return n, errno(err)
}

// Readdir returns up to n entries; fewer means the end, as wazero expects.
func (f *dirFile) Readdir(n int) ([]experimentalsys.Dirent, experimentalsys.Errno) {
	ents, err := f.f.ReadDir(n)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, errno(err)
	}
	out := make([]experimentalsys.Dirent, 0, len(ents))
	for _, e := range ents {
		out = append(out, experimentalsys.Dirent{Name: e.Name(), Type: e.Type()})
	}
	return out, 0
}

func (f *dirFile) Write(buf []byte) (int, experimentalsys.Errno) {
	if len(buf) == 0 {
		return 0, 0
	}
	n, err := f.f.Write(buf)
	return n, errno(err)
}

func (f *dirFile) Pwrite(buf []byte, off int64) (int, experimentalsys.Errno) {
	if len(buf) == 0 {
		return 0, 0
	}
	n, err := f.f.WriteAt(buf, off)
	return n, errno(err)
}

func (f *dirFile) Truncate(size int64) experimentalsys.Errno { return errno(f.f.Truncate(size)) }
func (f *dirFile) Sync() experimentalsys.Errno               { return errno(f.f.Sync()) }
func (f *dirFile) Datasync() experimentalsys.Errno           { return errno(f.f.Sync()) }
func (f *dirFile) Close() experimentalsys.Errno              { return errno(f.f.Close()) }

// seekVia returns a wazero file whose Seek is f's. wazero's Seek returns
// an Errno where io.Seeker returns an error, and go vet rejects any method
// named Seek without io.Seeker's signature; so the method is not declared
// here but borrowed from wazero's adapter for an fs.FS file
// (sysfs.AdaptFS), which forwards Seek to an io.Seeker. Only its Seek is
// used: dirFile declares everything else. The adapter treats a directory's
// rewind specially, so the file it wraps always says it is not one.
func seekVia(f engine.DirFile) experimentalsys.File {
	file, e := (&sysfs.AdaptFS{FS: seekFS{seeker{f}}}).OpenFile("f", experimentalsys.O_RDONLY, 0)
	if e != 0 {
		return experimentalsys.UnimplementedFile{}
	}
	return file
}

type seekFS struct{ f seeker }

func (s seekFS) Open(string) (fs.File, error) { return s.f, nil }

// seeker is an fs.File and an io.Seeker around an engine.DirFile; only
// Seek does anything.
type seeker struct{ f engine.DirFile }

func (s seeker) Seek(offset int64, whence int) (int64, error) {
	pos, err := s.f.Seek(offset, whence)
	var e syscall.Errno
	if errors.As(err, &e) {
		return pos, e
	}
	return pos, err
}

func (s seeker) Read([]byte) (int, error)   { return 0, io.EOF }
func (s seeker) Close() error               { return nil }
func (s seeker) Stat() (fs.FileInfo, error) { return notDir{}, nil }

type notDir struct{}

func (notDir) Name() string       { return "f" }
func (notDir) Size() int64        { return 0 }
func (notDir) Mode() fs.FileMode  { return 0 }
func (notDir) ModTime() time.Time { return time.Time{} }
func (notDir) IsDir() bool        { return false }
func (notDir) Sys() any           { return nil }
