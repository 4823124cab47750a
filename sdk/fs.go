package sdk

import (
	"encoding/binary"
	"errors"
	"io"
	"io/fs"
	"os"
	"path"
	"strings"
	"time"

	"github.com/blockhost/blockhost/abi"
	"github.com/blockhost/blockhost/sdk/internal/callerr"
	"github.com/blockhost/blockhost/sdk/internal/hostcall"
)

// The filesystem API: the directories granted to the step, through the
// fs_* host functions (docs/abi.md §9), shaped like the standard library —
// an fs.FS for reading (FS), and ReadFile, WriteFile, AppendFile, Stat,
// ReadDir, Mkdir, Remove and Rename for the rest.
//
// Paths are guest paths: the directory granted at "/data" holds
// "/data/in.txt". The functions of this file take a path with or without
// its leading slash ("data/in.txt" is the same file); FS takes names as
// every fs.FS does, unrooted ("data/in.txt"). The host decides everything
// else: which paths are granted, read-only or not, the quotas, and each
// operation's timeout. A ".." element is always refused, never resolved.
//
// Every error is an *FSError: errors.Is matches it against the result
// sentinel (ErrDenied, ErrNotFound, ErrExists, ErrLimit, ErrTimeout, …) and
// the io/fs sentinel where one fits (fs.ErrNotExist, fs.ErrPermission,
// fs.ErrExist, fs.ErrInvalid; os.ErrDeadlineExceeded once the step's
// deadline has passed), and errors.As finds
// an *Error with the host's code and class, so a handler can return it as
// it is: a write under a read-only grant ends the step as
// permission_denied, a write over a quota as quota_exceeded. An operation
// that outlasts its grant's operation timeout fails with ErrUnavailable
// (retryable), its message saying it timed out.

// FSError is a file operation the host refused or could not complete.
type FSError struct {
	// Op is the operation, such as "read" or "write", and Path the path
	// as given.
	Op, Path string
	// Result is what the host function returned.
	Result abi.Result
	// Code, Class and Message are the host's account of the failure.
	Code    abi.Code
	Class   abi.Class
	Message string
}

// Error returns the host's message, which names the operation and path.
func (e *FSError) Error() string { return "sdk: " + e.Message }

// Is matches the result's sentinel and the io/fs sentinel that fits it.
func (e *FSError) Is(target error) bool {
	if e.Result != abi.ResultOK && target == (&CallError{Result: e.Result}).Unwrap() {
		return true
	}
	switch e.Result {
	case abi.ResultNotFound:
		return target == fs.ErrNotExist
	case abi.ResultDenied:
		return target == fs.ErrPermission
	case abi.ResultExists:
		return target == fs.ErrExist
	case abi.ResultInvalid:
		return target == fs.ErrInvalid
	case abi.ResultTimeout:
		return target == os.ErrDeadlineExceeded
	}
	return false
}

// Unwrap returns the failure as an *Error with the host's code and class.
func (e *FSError) Unwrap() error {
	return &Error{Code: e.Code, Class: e.Class, Message: e.Error()}
}

// fsFailure builds the *FSError for a call that returned r, with the
// host's detail when it has one.
func fsFailure(op, name string, r abi.Result) *FSError {
	e := &FSError{Op: op, Path: name, Result: r, Message: op + " " + name + ": " + r.String()}
	if d := lastFSError(); d != nil {
		e.Code, e.Class, e.Message = d.Code, d.Class, d.Message
		return e
	}
	// No detail: the step is over, or the host has none to give.
	switch r {
	case abi.ResultTimeout:
		e.Code = abi.CodeCancelledByTimeout
	case abi.ResultCancelled:
		e.Code = abi.CodeCancelledByUser
	case abi.ResultNotFound:
		e.Code = abi.CodeResourceUnavailable
	case abi.ResultDenied:
		e.Code = abi.CodePermissionDenied
	case abi.ResultExists:
		e.Code = abi.CodeExecutionFailed
	case abi.ResultLimit:
		e.Code = abi.CodeQuotaExceeded
	case abi.ResultInvalid:
		e.Code = abi.CodeInvalidInput
	default:
		e.Code, e.Class = abi.CodeResourceUnavailable, abi.ClassRetryable
	}
	return e
}

// lastFSError asks the host for the detail of its last failed fs_* call,
// or returns nil.
func lastFSError() *abi.Error { return callerr.LastError(hostcall.FSLastError) }

// guestPath turns a name into the absolute guest path the host expects.
func guestPath(name string) string {
	if strings.HasPrefix(name, "/") {
		return name
	}
	return "/" + name
}

// ReadFile returns the contents of the file name.
func ReadFile(name string) ([]byte, error) { return readFile("read", name, guestPath(name)) }

func readFile(op, name, p string) ([]byte, error) {
	// A small file takes one call: fewer bytes than asked for is its end.
	buf := make([]byte, 64<<10)
	n, r := hostcall.FSRead(p, 0, buf)
	if r != abi.ResultOK {
		return nil, fsFailure(op, name, r)
	}
	if int(n) < len(buf) {
		return buf[:n], nil
	}
	// A larger one: make room for the rest in one more call, when its size
	// is known.
	if info, err := stat(op, name, p); err == nil && info.Mode().IsRegular() && info.Size() >= int64(len(buf)) {
		buf = append(buf, make([]byte, int(info.Size())-len(buf)+512)...)[:len(buf)]
	}
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		want := cap(buf) - len(buf)
		n, r := hostcall.FSRead(p, int64(len(buf)), buf[len(buf):cap(buf)])
		if r != abi.ResultOK {
			return nil, fsFailure(op, name, r)
		}
		buf = buf[:len(buf)+int(n)]
		if int(n) < want {
			return buf, nil
		}
	}
}

// WriteFile replaces the file name with data, creating it if needed. The
// host writes a new file and renames it into place, so the file is never
// seen half-written. A new file gets mode 0644; a replaced one keeps its
// mode.
func WriteFile(name string, data []byte) error {
	if r := hostcall.FSWrite(guestPath(name), data, 0); r != abi.ResultOK {
		return fsFailure("write", name, r)
	}
	return nil
}

// CreateFile is WriteFile of a file that must not exist yet: it fails with
// an error matching fs.ErrExist if it does.
func CreateFile(name string, data []byte) error {
	if r := hostcall.FSWrite(guestPath(name), data, abi.FSWriteExclusive); r != abi.ResultOK {
		return fsFailure("write", name, r)
	}
	return nil
}

// AppendFile appends data to the file name, creating it if needed. An
// append that fails is undone.
func AppendFile(name string, data []byte) error {
	if r := hostcall.FSAppend(guestPath(name), data); r != abi.ResultOK {
		return fsFailure("append", name, r)
	}
	return nil
}

// Mkdir creates the directory name; its parent must exist.
func Mkdir(name string) error {
	if r := hostcall.FSMkdir(guestPath(name)); r != abi.ResultOK {
		return fsFailure("mkdir", name, r)
	}
	return nil
}

// MkdirAll creates the directory name and any parents it lacks.
func MkdirAll(name string) error {
	p := guestPath(name)
	if info, err := stat("mkdir", name, p); err == nil {
		if info.IsDir() {
			return nil
		}
		return &FSError{Op: "mkdir", Path: name, Result: abi.ResultExists, Code: abi.CodeExecutionFailed, Message: "mkdir " + name + ": not a directory"}
	}
	if parent := path.Dir(p); parent != p && parent != "/" {
		if err := MkdirAll(parent); err != nil {
			return err
		}
	}
	if err := Mkdir(p); err != nil && !errors.Is(err, fs.ErrExist) {
		return err
	}
	return nil
}

// Remove removes the file or empty directory name.
func Remove(name string) error {
	if r := hostcall.FSRemove(guestPath(name)); r != abi.ResultOK {
		return fsFailure("remove", name, r)
	}
	return nil
}

// Rename renames oldname to newname, replacing a file there. Both must be
// in the same granted directory.
func Rename(oldname, newname string) error {
	if r := hostcall.FSRename(guestPath(oldname), guestPath(newname)); r != abi.ResultOK {
		return fsFailure("rename", oldname, r)
	}
	return nil
}

// Stat describes the file or directory name, following symbolic links.
func Stat(name string) (fs.FileInfo, error) { return stat("stat", name, guestPath(name)) }

func stat(op, name, p string) (fs.FileInfo, error) {
	var b [abi.FSStatSize]byte
	if r := hostcall.FSStat(p, &b); r != abi.ResultOK {
		return nil, fsFailure(op, name, r)
	}
	info := &fileInfo{
		name:    path.Base(p),
		size:    int64(binary.LittleEndian.Uint64(b[0:])),
		modTime: time.Unix(0, int64(binary.LittleEndian.Uint64(b[8:]))),
		mode:    fs.FileMode(binary.LittleEndian.Uint32(b[20:])).Perm(),
	}
	info.mode |= kindMode(abi.FSKind(binary.LittleEndian.Uint32(b[16:])))
	return info, nil
}

func kindMode(k abi.FSKind) fs.FileMode {
	switch k {
	case abi.FSKindFile:
		return 0
	case abi.FSKindDir:
		return fs.ModeDir
	case abi.FSKindSymlink:
		return fs.ModeSymlink
	}
	return fs.ModeIrregular
}

// ReadDir lists the directory name, sorted by name.
func ReadDir(name string) ([]fs.DirEntry, error) { return readDir("readdir", name, guestPath(name)) }

func readDir(op, name, p string) ([]fs.DirEntry, error) {
	buf := make([]byte, 4096)
	n, r := hostcall.FSList(p, buf)
	if r == abi.ResultLimit && n > uint32(len(buf)) {
		buf = make([]byte, n)
		n, r = hostcall.FSList(p, buf)
	}
	if r != abi.ResultOK {
		return nil, fsFailure(op, name, r)
	}
	var ents []fs.DirEntry
	for rest := buf[:n]; len(rest) > 1; {
		kind := abi.FSKind(rest[0])
		entry, after, ok := strings.Cut(string(rest[1:]), "\x00")
		if !ok {
			break
		}
		ents = append(ents, &dirEntry{dir: p, name: entry, typ: kindMode(kind)})
		rest = []byte(after)
	}
	return ents, nil
}

type fileInfo struct {
	name    string
	size    int64
	mode    fs.FileMode
	modTime time.Time
}

func (i *fileInfo) Name() string       { return i.name }
func (i *fileInfo) Size() int64        { return i.size }
func (i *fileInfo) Mode() fs.FileMode  { return i.mode }
func (i *fileInfo) ModTime() time.Time { return i.modTime }
func (i *fileInfo) IsDir() bool        { return i.mode.IsDir() }
func (i *fileInfo) Sys() any           { return nil }

type dirEntry struct {
	dir, name string
	typ       fs.FileMode
}

func (d *dirEntry) Name() string      { return d.name }
func (d *dirEntry) IsDir() bool       { return d.typ.IsDir() }
func (d *dirEntry) Type() fs.FileMode { return d.typ }

// Info describes the entry, following a symbolic link.
func (d *dirEntry) Info() (fs.FileInfo, error) {
	return stat("stat", d.name, path.Join(d.dir, d.name))
}

// FS returns the step's file system as an fs.FS for reading: the name
// "data/in.txt" is the guest path "/data/in.txt", and "." is the root,
// which lists the granted directories. It also implements fs.StatFS,
// fs.ReadFileFS and fs.ReadDirFS, so fs.ReadFile, fs.WalkDir and
// fs.Glob work on it.
//
// An open file reads through the host at each Read, from its own offset:
// a file replaced while it is open may be read partly old, partly new.
func FS() fs.FS { return stepFS{} }

type stepFS struct{}

var (
	_ fs.StatFS     = stepFS{}
	_ fs.ReadFileFS = stepFS{}
	_ fs.ReadDirFS  = stepFS{}
)

// fsName checks an fs.FS name and returns its guest path.
func fsName(op, name string) (string, error) {
	if !fs.ValidPath(name) {
		return "", &fs.PathError{Op: op, Path: name, Err: fs.ErrInvalid}
	}
	if name == "." {
		return "/", nil
	}
	return "/" + name, nil
}

func (stepFS) Open(name string) (fs.File, error) {
	p, err := fsName("open", name)
	if err != nil {
		return nil, err
	}
	info, err := stat("open", name, p)
	if err != nil {
		return nil, err
	}
	return &file{name: name, path: p, info: info}, nil
}

func (stepFS) Stat(name string) (fs.FileInfo, error) {
	p, err := fsName("stat", name)
	if err != nil {
		return nil, err
	}
	return stat("stat", name, p)
}

func (stepFS) ReadFile(name string) ([]byte, error) {
	p, err := fsName("read", name)
	if err != nil {
		return nil, err
	}
	return readFile("read", name, p)
}

func (stepFS) ReadDir(name string) ([]fs.DirEntry, error) {
	p, err := fsName("readdir", name)
	if err != nil {
		return nil, err
	}
	return readDir("readdir", name, p)
}

// file is an open file or directory of FS.
type file struct {
	name, path string
	info       fs.FileInfo
	off        int64
	ents       []fs.DirEntry
	listed     bool
	closed     bool
}

var _ fs.ReadDirFile = (*file)(nil)

func (f *file) Stat() (fs.FileInfo, error) {
	if f.closed {
		return nil, &fs.PathError{Op: "stat", Path: f.name, Err: fs.ErrClosed}
	}
	return f.info, nil
}

func (f *file) Read(p []byte) (int, error) {
	switch {
	case f.closed:
		return 0, &fs.PathError{Op: "read", Path: f.name, Err: fs.ErrClosed}
	case f.info.IsDir():
		return 0, &fs.PathError{Op: "read", Path: f.name, Err: fs.ErrInvalid}
	case len(p) == 0:
		return 0, nil
	}
	n, r := hostcall.FSRead(f.path, f.off, p)
	if r != abi.ResultOK {
		return 0, fsFailure("read", f.name, r)
	}
	f.off += int64(n)
	if n == 0 {
		return 0, io.EOF
	}
	return int(n), nil
}

func (f *file) ReadDir(n int) ([]fs.DirEntry, error) {
	if f.closed {
		return nil, &fs.PathError{Op: "readdir", Path: f.name, Err: fs.ErrClosed}
	}
	if !f.info.IsDir() {
		return nil, &fs.PathError{Op: "readdir", Path: f.name, Err: fs.ErrInvalid}
	}
	if !f.listed {
		ents, err := readDir("readdir", f.name, f.path)
		if err != nil {
			return nil, err
		}
		f.ents, f.listed = ents, true
	}
	if n <= 0 {
		ents := f.ents
		f.ents = nil
		return ents, nil
	}
	if len(f.ents) == 0 {
		return nil, io.EOF
	}
	n = min(n, len(f.ents))
	ents := f.ents[:n]
	f.ents = f.ents[n:]
	return ents, nil
}

func (f *file) Close() error {
	if f.closed {
		return &fs.PathError{Op: "close", Path: f.name, Err: fs.ErrClosed}
	}
	f.closed = true
	return nil
}
