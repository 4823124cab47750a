//go:build !linux

package wasip1

import "io/fs"

// stat is what a WASI filestat needs beyond fs.FileInfo. blockhost hosts
// run on Linux; elsewhere only the modification time is known.
type stat struct{ dev, ino, nlink, atim, ctim uint64 }

func sysStat(info fs.FileInfo) stat {
	mt := uint64(info.ModTime().UnixNano())
	return stat{nlink: 1, atim: mt, ctim: mt}
}
