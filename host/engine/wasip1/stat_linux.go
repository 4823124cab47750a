package wasip1

import (
	"io/fs"
	"syscall"
	"time"
)

// stat is what a WASI filestat needs beyond fs.FileInfo.
type stat struct{ dev, ino, nlink, atim, ctim uint64 }

func sysStat(info fs.FileInfo) stat {
	mt := uint64(info.ModTime().UnixNano())
	st, ok := info.Sys().(*syscall.Stat_t)
	if !ok {
		return stat{nlink: 1, atim: mt, ctim: mt}
	}
	return stat{
		dev: st.Dev, ino: st.Ino, nlink: st.Nlink,
		atim: uint64(time.Unix(st.Atim.Unix()).UnixNano()),
		ctim: uint64(time.Unix(st.Ctim.Unix()).UnixNano()),
	}
}
