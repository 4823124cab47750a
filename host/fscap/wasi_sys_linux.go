package fscap

import (
	"os"
	"path"
	"syscall"
	"time"
	"unsafe"
)

// The system calls behind WASI's times, append mode and positioned writes,
// which package os does not offer.

// lutimes sets the times of the symbolic link rel itself: utimensat with
// AT_SYMLINK_NOFOLLOW on its last element, relative to its parent directory
// opened beneath root, so that nothing outside is reached.
func lutimes(root *os.Root, rel string, atime, mtime *time.Time) error {
	dir, err := root.Open(path.Dir(rel))
	if err != nil {
		return err
	}
	defer dir.Close()
	name, err := syscall.BytePtrFromString(path.Base(rel))
	if err != nil {
		return err
	}
	ts := timespecs(atime, mtime)
	rc, err := dir.SyscallConn()
	if err != nil {
		return err
	}
	var errno syscall.Errno
	if err := rc.Control(func(fd uintptr) {
		_, _, errno = syscall.Syscall6(syscall.SYS_UTIMENSAT, fd, uintptr(unsafe.Pointer(name)),
			uintptr(unsafe.Pointer(&ts[0])), atSymlinkNofollow, 0, 0)
	}); err != nil {
		return err
	}
	if errno != 0 {
		return &os.PathError{Op: "lutimes", Path: rel, Err: errno}
	}
	return nil
}

const atSymlinkNofollow = 0x100

func timespecs(atime, mtime *time.Time) [2]syscall.Timespec {
	ts := [2]syscall.Timespec{{Nsec: utimeOmit}, {Nsec: utimeOmit}}
	if atime != nil {
		ts[0] = syscall.NsecToTimespec(atime.UnixNano())
	}
	if mtime != nil {
		ts[1] = syscall.NsecToTimespec(mtime.UnixNano())
	}
	return ts
}

// times returns a file's access and modification times.
func times(info os.FileInfo) (atime, mtime time.Time) {
	mtime = info.ModTime()
	atime = mtime
	if st, ok := info.Sys().(*syscall.Stat_t); ok {
		atime = time.Unix(st.Atim.Unix())
	}
	return atime, mtime
}

// futimes sets an open file's times: utimensat(fd, NULL, ts, 0) is
// futimens(fd, ts).
func futimes(file *os.File, atime, mtime *time.Time) error {
	ts := timespecs(atime, mtime)
	rc, err := file.SyscallConn()
	if err != nil {
		return err
	}
	var errno syscall.Errno
	if err := rc.Control(func(fd uintptr) {
		_, _, errno = syscall.Syscall6(syscall.SYS_UTIMENSAT, fd, 0, uintptr(unsafe.Pointer(&ts[0])), 0, 0, 0)
	}); err != nil {
		return err
	}
	if errno != 0 {
		return &os.PathError{Op: "futimens", Path: file.Name(), Err: errno}
	}
	return nil
}

// utimeOmit leaves a time unchanged in utimensat.
const utimeOmit = (1 << 30) - 2

func setAppend(file *os.File, enable bool) error {
	rc, err := file.SyscallConn()
	if err != nil {
		return err
	}
	var errno syscall.Errno
	if err := rc.Control(func(fd uintptr) {
		var fl uintptr
		fl, _, errno = syscall.Syscall(syscall.SYS_FCNTL, fd, syscall.F_GETFL, 0)
		if errno != 0 {
			return
		}
		if enable {
			fl |= syscall.O_APPEND
		} else {
			fl &^= syscall.O_APPEND
		}
		_, _, errno = syscall.Syscall(syscall.SYS_FCNTL, fd, syscall.F_SETFL, fl)
	}); err != nil {
		return err
	}
	if errno != 0 {
		return &os.PathError{Op: "fcntl", Path: file.Name(), Err: errno}
	}
	return nil
}

// pwrite writes p at off with pwrite(2). os.File.WriteAt refuses a file
// opened in append mode, where Linux writes at the end instead, which
// WASI allows.
func pwrite(file *os.File, p []byte, off int64) (int, error) {
	rc, err := file.SyscallConn()
	if err != nil {
		return 0, err
	}
	var n int
	var werr error
	if err := rc.Write(func(fd uintptr) bool {
		n, werr = syscall.Pwrite(int(fd), p, off)
		return werr != syscall.EAGAIN
	}); err != nil {
		return n, err
	}
	if werr != nil {
		return n, &os.PathError{Op: "pwrite", Path: file.Name(), Err: werr}
	}
	return n, nil
}
