package engine

import (
	"io/fs"
	"time"
)

// Dir is a directory a WASI guest sees as a preopened directory.
//
// FS is the only way an engine may reach the directory's contents: every
// path the guest opens under GuestPath is passed to FS, relative to it, and
// FS alone decides what the name means on the host. Engines serve WASI's
// file functions through package wasip1, which does exactly that.
type Dir struct {
	// GuestPath is where the guest sees the directory, such as "/data":
	// absolute, slash-separated and clean.
	GuestPath string
	// FS is the directory's confined file system.
	FS DirFS
	// ReadOnly is true when the guest may not change anything under the
	// directory. FS refuses writes itself; an engine may refuse them
	// earlier too.
	ReadOnly bool
}

// OpenFlag says how DirFS.OpenFile opens a file.
type OpenFlag uint32

// Open flags. OpenRead and OpenWrite may be combined; neither means
// OpenRead.
const (
	OpenRead OpenFlag = 1 << iota
	OpenWrite
	OpenAppend
	OpenCreate
	OpenExclusive
	OpenTruncate
	// OpenDirectory fails unless the name is a directory.
	OpenDirectory
	// OpenNoFollow fails when the last element of the name is a symbolic
	// link.
	OpenNoFollow
)

// DirFS is a directory tree that no name can lead out of, as an engine's
// WASI reaches it. Names are slash-separated, relative to the tree's root
// ("." is the root) and, as an engine passes them, already cleaned; a
// trailing slash means the name must be a directory.
//
// Errors wrap the syscall.Errno that best describes them, or one of the
// io/fs sentinel errors, so that an engine can turn them into WASI error
// numbers. Implementations are used by one guest at a time but must be
// safe for concurrent use.
type DirFS interface {
	OpenFile(name string, flag OpenFlag, perm fs.FileMode) (DirFile, error)
	// Stat follows a symbolic link in the last element; Lstat does not.
	Stat(name string) (fs.FileInfo, error)
	Lstat(name string) (fs.FileInfo, error)
	Mkdir(name string, perm fs.FileMode) error
	// Rmdir removes an empty directory and Unlink anything else.
	Rmdir(name string) error
	Unlink(name string) error
	Rename(oldname, newname string) error
	Readlink(name string) (string, error)
	// Symlink creates name as a symbolic link to target, which is stored
	// as given; whether following it stays inside the tree is decided each
	// time it is followed.
	Symlink(target, name string) error
	// Link creates newname as a hard link to oldname (not followed).
	Link(oldname, newname string) error
	// SetTimes sets name's access and modification times; a nil time is
	// left as it is. follow says whether a symbolic link in the last
	// element is followed.
	SetTimes(name string, atime, mtime *time.Time, follow bool) error
}

// DirFile is a file or directory opened through a DirFS. Read and
// ReadDir return io.EOF at the end, as package os does.
type DirFile interface {
	Read(p []byte) (int, error)
	ReadAt(p []byte, off int64) (int, error)
	Write(p []byte) (int, error)
	WriteAt(p []byte, off int64) (int, error)
	Seek(offset int64, whence int) (int64, error)
	Stat() (fs.FileInfo, error)
	ReadDir(n int) ([]fs.DirEntry, error)
	Truncate(size int64) error
	// SetTimes sets the file's access and modification times; a nil time
	// is left as it is.
	SetTimes(atime, mtime *time.Time) error
	// SetAppend turns append mode on or off: in append mode every Write
	// goes to the end of the file.
	SetAppend(enable bool) error
	Sync() error
	Close() error
}
