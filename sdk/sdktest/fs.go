//go:build !wasip1

package sdktest

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"slices"
	"strings"
	"syscall"
	"unicode/utf8"

	"github.com/blockhost/blockhost/abi"
	"github.com/blockhost/blockhost/sdk/internal/hostcall"
)

// Dir grants a step a directory of the test's, such as t.TempDir(), for
// the sdk's file functions (sdk.ReadFile, sdk.WriteFile, sdk.FS, …).
type Dir struct {
	// GuestPath is where the block sees it, such as "/data".
	GuestPath string
	// HostDir is the directory on the test's machine.
	HostDir string
	// ReadWrite allows changes under it. A Dir is read-only by default,
	// as a grant is on the host (mode = "rw" in a manifest, ":rw" on the
	// command line, makes one writable).
	ReadWrite bool
}

var _ hostcall.FSHost = (*fakeHost)(nil)

// fakeFS is the fake host's filesystem state. Each directory is opened as
// an os.Root for each call, so that no name leads out of it, as on the
// real host; ".." elements are refused, read-only directories refuse
// changes, and failures have the host's result codes, step codes and
// classes. Quotas, operation timeouts, atomic replacement and logging are
// the real host's (package host/fscap) and are not simulated.
type fakeFS struct {
	dirs    []Dir
	lastErr *abi.Error
}

// fsFail records the detail of a failed call; the caller holds mu.
func (h *fakeHost) fsFail(r abi.Result, op, p, msg string) abi.Result {
	code, class := abi.CodeExecutionFailed, abi.ClassPermanent
	switch r {
	case abi.ResultNotFound:
		code = abi.CodeResourceUnavailable
	case abi.ResultDenied:
		code = abi.CodePermissionDenied
	case abi.ResultLimit:
		code = abi.CodeQuotaExceeded
	case abi.ResultInvalid:
		code = abi.CodeInvalidInput
	case abi.ResultUnavailable, abi.ResultIO, abi.ResultTimeout:
		code, class = abi.CodeResourceUnavailable, abi.ClassRetryable
	}
	h.fs.lastErr = abi.NewError(code, class, fmt.Sprintf("%s %s: %s", op, p, msg))
	return r
}

// fsErr turns an error from package os into a result.
func (h *fakeHost) fsErr(op, p string, err error) abi.Result {
	var errno syscall.Errno
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return h.fsFail(abi.ResultNotFound, op, p, "not found")
	case errors.Is(err, fs.ErrExist), errors.Is(err, syscall.ENOTEMPTY):
		return h.fsFail(abi.ResultExists, op, p, "already exists")
	case errors.Is(err, fs.ErrPermission):
		return h.fsFail(abi.ResultDenied, op, p, "permission denied")
	case errors.As(err, &errno):
		return h.fsFail(abi.ResultInvalid, op, p, errno.Error())
	}
	// os.Root's refusal of a name that leads out of the root is the only
	// other error a name can cause.
	return h.fsFail(abi.ResultDenied, op, p, "permission denied: "+err.Error())
}

// resolve finds the directory p is in; the caller holds mu.
func (h *fakeHost) resolve(op, p string, write bool) (*os.Root, string, abi.Result) {
	fail := func(r abi.Result, msg string) (*os.Root, string, abi.Result) {
		return nil, "", h.fsFail(r, op, p, msg)
	}
	if !utf8.ValidString(p) || strings.ContainsFunc(p, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return fail(abi.ResultInvalid, "invalid path: not valid UTF-8, or a control character")
	}
	if !strings.HasPrefix(p, "/") || len(p) > abi.FSMaxPath {
		return fail(abi.ResultInvalid, "invalid path: not an absolute path of at most 4096 bytes")
	}
	if slices.Contains(strings.Split(p, "/"), "..") {
		return fail(abi.ResultDenied, `permission denied: ".." element`)
	}
	var best *Dir
	rel := ""
	for i := range h.fs.dirs {
		d := &h.fs.dirs[i]
		switch {
		case p == d.GuestPath:
			best, rel = d, "."
		case d.GuestPath == "/" && best == nil:
			best, rel = d, strings.TrimPrefix(p, "/")
		case strings.HasPrefix(p, d.GuestPath+"/"):
			best, rel = d, p[len(d.GuestPath)+1:]
		}
	}
	switch {
	case best == nil:
		return fail(abi.ResultDenied, "permission denied: no directory is granted at this path")
	case write && !best.ReadWrite:
		return fail(abi.ResultDenied, "permission denied: the directory is granted read-only")
	case rel == "":
		rel = "."
	}
	root, err := os.OpenRoot(best.HostDir)
	if err != nil {
		return nil, "", h.fsFail(abi.ResultUnavailable, op, p, err.Error())
	}
	return root, path.Clean(rel), abi.ResultOK
}

// fsCall runs one filesystem call: it counts it, answers timeout once the
// step is over, and resolves its path.
func (h *fakeHost) fsCall(op, p string, write bool, fn func(root *os.Root, rel string) abi.Result) abi.Result {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.begin() {
		return abi.ResultTimeout
	}
	root, rel, r := h.resolve(op, p, write)
	if r != abi.ResultOK {
		return r
	}
	defer root.Close()
	return fn(root, rel)
}

func (h *fakeHost) FSRead(p string, off int64, buf []byte) (n uint32, r abi.Result) {
	r = h.fsCall("read", p, false, func(root *os.Root, rel string) abi.Result {
		f, err := root.Open(rel)
		if err != nil {
			return h.fsErr("read", p, err)
		}
		defer f.Close()
		m, err := f.ReadAt(buf, off)
		if err != nil && err != io.EOF {
			return h.fsErr("read", p, err)
		}
		n = uint32(m)
		return abi.ResultOK
	})
	return n, r
}

func (h *fakeHost) FSWrite(p string, data []byte, flags uint32) abi.Result {
	return h.fsCall("write", p, true, func(root *os.Root, rel string) abi.Result {
		mode := os.O_WRONLY | os.O_CREATE | os.O_TRUNC
		if flags&abi.FSWriteExclusive != 0 {
			mode = os.O_WRONLY | os.O_CREATE | os.O_EXCL
		}
		f, err := root.OpenFile(rel, mode, 0o644)
		if err != nil {
			return h.fsErr("write", p, err)
		}
		_, err = f.Write(data)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return h.fsErr("write", p, err)
		}
		return abi.ResultOK
	})
}

func (h *fakeHost) FSAppend(p string, data []byte) abi.Result {
	return h.fsCall("append", p, true, func(root *os.Root, rel string) abi.Result {
		f, err := root.OpenFile(rel, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
		if err != nil {
			return h.fsErr("append", p, err)
		}
		_, err = f.Write(data)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return h.fsErr("append", p, err)
		}
		return abi.ResultOK
	})
}

// virtual returns the names under p that lead to granted directories when
// p is above them and in none, as the host's virtual directories are; the
// caller holds mu.
func (h *fakeHost) virtual(p string) ([]string, bool) {
	if !strings.HasPrefix(p, "/") || slices.Contains(strings.Split(p, "/"), "..") {
		return nil, false
	}
	prefix := strings.TrimSuffix(p, "/") + "/"
	var names []string
	for _, d := range h.fs.dirs {
		if d.GuestPath == p || strings.HasPrefix(p, strings.TrimSuffix(d.GuestPath, "/")+"/") {
			return nil, false // inside a grant
		}
		if rest, ok := strings.CutPrefix(d.GuestPath, prefix); ok && rest != "" {
			name, _, _ := strings.Cut(rest, "/")
			if !slices.Contains(names, name) {
				names = append(names, name)
			}
		}
	}
	slices.Sort(names)
	return names, len(names) > 0
}

func (h *fakeHost) FSStat(p string, stat *[abi.FSStatSize]byte) abi.Result {
	h.mu.Lock()
	_, virtual := h.virtual(p)
	h.mu.Unlock()
	if virtual {
		clear(stat[:])
		binary.LittleEndian.PutUint32(stat[16:], uint32(abi.FSKindDir))
		binary.LittleEndian.PutUint32(stat[20:], 0o555)
		return abi.ResultOK
	}
	return h.fsCall("stat", p, false, func(root *os.Root, rel string) abi.Result {
		info, err := root.Stat(rel)
		if err != nil {
			return h.fsErr("stat", p, err)
		}
		kind := abi.FSKindOther
		switch {
		case info.Mode().IsRegular():
			kind = abi.FSKindFile
		case info.IsDir():
			kind = abi.FSKindDir
		}
		binary.LittleEndian.PutUint64(stat[0:], uint64(info.Size()))
		binary.LittleEndian.PutUint64(stat[8:], uint64(info.ModTime().UnixNano()))
		binary.LittleEndian.PutUint32(stat[16:], uint32(kind))
		binary.LittleEndian.PutUint32(stat[20:], uint32(info.Mode().Perm()))
		return abi.ResultOK
	})
}

func (h *fakeHost) FSList(p string, buf []byte) (n uint32, r abi.Result) {
	h.mu.Lock()
	names, virtual := h.virtual(p)
	h.mu.Unlock()
	if virtual {
		var out []byte
		for _, name := range names {
			out = append(append(append(out, byte(abi.FSKindDir)), name...), 0)
		}
		if len(buf) < len(out) {
			return uint32(len(out)), abi.ResultLimit
		}
		return uint32(copy(buf, out)), abi.ResultOK
	}
	r = h.fsCall("list", p, false, func(root *os.Root, rel string) abi.Result {
		f, err := root.Open(rel)
		if err != nil {
			return h.fsErr("list", p, err)
		}
		defer f.Close()
		ents, err := f.ReadDir(-1)
		if err != nil {
			return h.fsErr("list", p, err)
		}
		slices.SortFunc(ents, func(a, b fs.DirEntry) int { return strings.Compare(a.Name(), b.Name()) })
		var out []byte
		for _, e := range ents {
			kind := abi.FSKindOther
			switch {
			case e.Type().IsRegular():
				kind = abi.FSKindFile
			case e.IsDir():
				kind = abi.FSKindDir
			case e.Type()&fs.ModeSymlink != 0:
				kind = abi.FSKindSymlink
			}
			out = append(append(append(out, byte(kind)), e.Name()...), 0)
		}
		n = uint32(len(out))
		if len(buf) < len(out) {
			return abi.ResultLimit
		}
		copy(buf, out)
		return abi.ResultOK
	})
	return n, r
}

func (h *fakeHost) FSRemove(p string) abi.Result {
	return h.fsCall("remove", p, true, func(root *os.Root, rel string) abi.Result {
		if rel == "." {
			return h.fsFail(abi.ResultDenied, "remove", p, "permission denied: the granted directory itself cannot be removed")
		}
		if err := root.Remove(rel); err != nil {
			return h.fsErr("remove", p, err)
		}
		return abi.ResultOK
	})
}

func (h *fakeHost) FSMkdir(p string) abi.Result {
	return h.fsCall("mkdir", p, true, func(root *os.Root, rel string) abi.Result {
		if err := root.Mkdir(rel, 0o755); err != nil {
			return h.fsErr("mkdir", p, err)
		}
		return abi.ResultOK
	})
}

func (h *fakeHost) FSRename(from, to string) abi.Result {
	return h.fsCall("rename", from, true, func(root *os.Root, rel string) abi.Result {
		toRoot, toRel, r := h.resolve("rename", to, true)
		if r != abi.ResultOK {
			return r
		}
		defer toRoot.Close()
		if toRoot.Name() != root.Name() {
			return h.fsFail(abi.ResultDenied, "rename", from, "permission denied: a rename must stay inside one granted directory")
		}
		if err := root.Rename(rel, toRel); err != nil {
			return h.fsErr("rename", from, err)
		}
		return abi.ResultOK
	})
}

func (h *fakeHost) FSLastError(buf []byte) (uint32, abi.Result) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.begin() {
		return 0, abi.ResultTimeout
	}
	if h.fs.lastErr == nil {
		return 0, abi.ResultNotFound
	}
	out, _ := json.Marshal(h.fs.lastErr)
	if len(buf) < len(out) {
		return uint32(len(out)), abi.ResultLimit
	}
	return uint32(copy(buf, out)), abi.ResultOK
}
