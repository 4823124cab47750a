//go:build unix

package diskcache

import (
	"os"
	"syscall"
)

// HoldDir marks the directory dir as in use by this process until the
// returned file is closed: Prune never removes a staging directory that a
// live process holds, however old. The hold is a shared flock(2) on the
// directory, which the kernel drops when the process ends, killed or not.
func HoldDir(dir string) (*os.File, error) {
	f, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_SH|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// heldDir reports whether a process holds dir (HoldDir): whether an
// exclusive lock on it cannot be had now. One that can is released at
// once; a directory that cannot be opened counts as held.
func heldDir(dir string) bool {
	f, err := os.Open(dir)
	if err != nil {
		return true
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		return true
	}
	_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
	return false
}
