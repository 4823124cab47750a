//go:build !linux

package fscap

import (
	"os"
	"syscall"
	"time"
)

// blockhost hosts run on Linux. Elsewhere a WASI guest cannot set times or
// toggle append mode, and a positioned write in append mode is refused.

func lutimes(*os.Root, string, *time.Time, *time.Time) error { return syscall.ENOTSUP }
func futimes(*os.File, *time.Time, *time.Time) error         { return syscall.ENOTSUP }
func setAppend(*os.File, bool) error                         { return syscall.ENOTSUP }

func times(info os.FileInfo) (atime, mtime time.Time) { return info.ModTime(), info.ModTime() }

func pwrite(file *os.File, p []byte, off int64) (int, error) { return file.WriteAt(p, off) }
