//go:build wasip1

package hostcall

import (
	"unsafe"

	"github.com/blockhost/blockhost/abi"
)

// The filesystem capability's host functions, docs/abi.md §9.

//go:wasmimport blockhost fs_read
//go:noescape
func fsRead(path *byte, pathLen uint32, off int64, buf *byte, bufLen uint32, nPtr *uint32) uint32

//go:wasmimport blockhost fs_write
//go:noescape
func fsWrite(path *byte, pathLen uint32, data *byte, dataLen uint32, flags uint32) uint32

//go:wasmimport blockhost fs_append
//go:noescape
func fsAppend(path *byte, pathLen uint32, data *byte, dataLen uint32) uint32

//go:wasmimport blockhost fs_stat
//go:noescape
func fsStat(path *byte, pathLen uint32, stat *byte) uint32

//go:wasmimport blockhost fs_list
//go:noescape
func fsList(path *byte, pathLen uint32, buf *byte, bufLen uint32, nPtr *uint32) uint32

//go:wasmimport blockhost fs_remove
//go:noescape
func fsRemove(path *byte, pathLen uint32) uint32

//go:wasmimport blockhost fs_mkdir
//go:noescape
func fsMkdir(path *byte, pathLen uint32) uint32

//go:wasmimport blockhost fs_rename
//go:noescape
func fsRename(from *byte, fromLen uint32, to *byte, toLen uint32) uint32

//go:wasmimport blockhost fs_last_error
//go:noescape
func fsLastError(buf *byte, bufLen uint32, nPtr *uint32) uint32

// FSRead reads up to len(buf) bytes of the file path from off and returns
// the count; fewer than len(buf) means the end of the file.
func FSRead(path string, off int64, buf []byte) (uint32, abi.Result) {
	var n uint32
	r := fsRead(unsafe.StringData(path), uint32(len(path)), off, unsafe.SliceData(buf), uint32(len(buf)), &n)
	return n, abi.Result(r)
}

// FSWrite replaces the file path with data.
func FSWrite(path string, data []byte, flags uint32) abi.Result {
	return abi.Result(fsWrite(unsafe.StringData(path), uint32(len(path)), unsafe.SliceData(data), uint32(len(data)), flags))
}

// FSAppend appends data to the file path.
func FSAppend(path string, data []byte) abi.Result {
	return abi.Result(fsAppend(unsafe.StringData(path), uint32(len(path)), unsafe.SliceData(data), uint32(len(data))))
}

// FSStat describes the file path in stat.
func FSStat(path string, stat *[abi.FSStatSize]byte) abi.Result {
	return abi.Result(fsStat(unsafe.StringData(path), uint32(len(path)), &stat[0]))
}

// FSList writes the directory's entries into buf and returns their length;
// when buf is too small it writes nothing and returns the length needed
// with limit.
func FSList(path string, buf []byte) (uint32, abi.Result) {
	var n uint32
	r := fsList(unsafe.StringData(path), uint32(len(path)), unsafe.SliceData(buf), uint32(len(buf)), &n)
	return n, abi.Result(r)
}

// FSRemove removes a file or an empty directory.
func FSRemove(path string) abi.Result {
	return abi.Result(fsRemove(unsafe.StringData(path), uint32(len(path))))
}

// FSMkdir creates a directory.
func FSMkdir(path string) abi.Result {
	return abi.Result(fsMkdir(unsafe.StringData(path), uint32(len(path))))
}

// FSRename renames from to to.
func FSRename(from, to string) abi.Result {
	return abi.Result(fsRename(unsafe.StringData(from), uint32(len(from)), unsafe.StringData(to), uint32(len(to))))
}

// FSLastError copies the detail of the last failed fs_* call into buf, as
// for FSList.
func FSLastError(buf []byte) (uint32, abi.Result) {
	var n uint32
	r := fsLastError(unsafe.SliceData(buf), uint32(len(buf)), &n)
	return n, abi.Result(r)
}
