//go:build !wasip1

package hostcall

import "github.com/blockhost/blockhost/abi"

// FSHost is the filesystem part of a native build's host, one method per
// host function of docs/abi.md §9. It is optional: a Host that does not
// implement it has no directories granted, and every call is denied.
type FSHost interface {
	FSRead(path string, off int64, buf []byte) (uint32, abi.Result)
	FSWrite(path string, data []byte, flags uint32) abi.Result
	FSAppend(path string, data []byte) abi.Result
	FSStat(path string, stat *[abi.FSStatSize]byte) abi.Result
	FSList(path string, buf []byte) (uint32, abi.Result)
	FSRemove(path string) abi.Result
	FSMkdir(path string) abi.Result
	FSRename(from, to string) abi.Result
	FSLastError(buf []byte) (uint32, abi.Result)
}

// fsHost returns the installed host's filesystem part, or nil with the
// result every call gets without one: unavailable outside a step, denied
// for a host without directories.
func fsHost() (FSHost, abi.Result) {
	h := host()
	if _, none := h.(noHost); none {
		return nil, abi.ResultUnavailable
	}
	if fh, ok := h.(FSHost); ok {
		return fh, abi.ResultOK
	}
	return nil, abi.ResultDenied
}

// FSRead reads up to len(buf) bytes of the file path from off and returns
// the count; fewer than len(buf) means the end of the file.
func FSRead(path string, off int64, buf []byte) (uint32, abi.Result) {
	h, r := fsHost()
	if h == nil {
		return 0, r
	}
	return h.FSRead(path, off, buf)
}

// FSWrite replaces the file path with data.
func FSWrite(path string, data []byte, flags uint32) abi.Result {
	h, r := fsHost()
	if h == nil {
		return r
	}
	return h.FSWrite(path, data, flags)
}

// FSAppend appends data to the file path.
func FSAppend(path string, data []byte) abi.Result {
	h, r := fsHost()
	if h == nil {
		return r
	}
	return h.FSAppend(path, data)
}

// FSStat describes the file path in stat.
func FSStat(path string, stat *[abi.FSStatSize]byte) abi.Result {
	h, r := fsHost()
	if h == nil {
		return r
	}
	return h.FSStat(path, stat)
}

// FSList writes the directory's entries into buf and returns their length;
// when buf is too small it writes nothing and returns the length needed
// with limit.
func FSList(path string, buf []byte) (uint32, abi.Result) {
	h, r := fsHost()
	if h == nil {
		return 0, r
	}
	return h.FSList(path, buf)
}

// FSRemove removes a file or an empty directory.
func FSRemove(path string) abi.Result {
	h, r := fsHost()
	if h == nil {
		return r
	}
	return h.FSRemove(path)
}

// FSMkdir creates a directory.
func FSMkdir(path string) abi.Result {
	h, r := fsHost()
	if h == nil {
		return r
	}
	return h.FSMkdir(path)
}

// FSRename renames from to to.
func FSRename(from, to string) abi.Result {
	h, r := fsHost()
	if h == nil {
		return r
	}
	return h.FSRename(from, to)
}

// FSLastError copies the detail of the last failed fs_* call into buf, as
// for FSList.
func FSLastError(buf []byte) (uint32, abi.Result) {
	h, r := fsHost()
	if h == nil {
		return 0, r
	}
	return h.FSLastError(buf)
}
