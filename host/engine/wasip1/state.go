// Package wasip1 serves the file, directory, standard stream and polling
// functions of WASI preview1 (fd_*, path_*, poll_oneoff, sock_*) from Go,
// for every engine: an engine links Functions in front of, or in place of,
// its own WASI, so that a guest sees one implementation whichever engine
// runs it.
//
// Every name a guest gives is resolved by the layer against the directory
// descriptor it is relative to, lexically, and handed to that preopened
// directory's engine.DirFS (host/fscap) relative to the directory's root;
// a name that would climb above the preopened directory is refused with
// ENOTCAPABLE before it reaches the file system, and the DirFS decides
// what the name means on the host, symbolic links included. The layer
// never touches the host file system itself.
//
// Guarantees, on every engine:
//   - a function entered after the run's context ended does nothing: the
//     engine ends the run instead of returning to the guest (see
//     engine.HostFunction), and a wait in poll_oneoff ends with the context;
//   - the guest's standard input is the run's Stdin, read without blocking
//     beyond it, and standard output and error go to the run's writers;
//   - descriptors, rights and flags behave as preview1 specifies; rights
//     can only be narrowed.
package wasip1

import (
	"context"
	"io"
	"io/fs"
	"sort"
	"sync"

	"github.com/blockhost/blockhost/host/engine"
)

// ModuleName is the import module of WASI preview1.
const ModuleName = "wasi_snapshot_preview1"

// State is one run's descriptor table.
type State struct {
	mu     sync.Mutex
	fds    map[uint32]*fdesc
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
}

type stateKey struct{}

// With returns ctx carrying st, for the functions of this package to find.
func With(ctx context.Context, st *State) context.Context {
	return context.WithValue(ctx, stateKey{}, st)
}

func stateOf(ctx context.Context) *State {
	st, _ := ctx.Value(stateKey{}).(*State)
	return st
}

// fdKind is what a descriptor refers to.
type fdKind uint8

const (
	kindStdin fdKind = iota
	kindStdout
	kindStderr
	kindDir
	kindFile
)

// fdesc is one open descriptor.
type fdesc struct {
	kind fdKind
	// fs and rel locate a directory or file: rel is relative to fs's root
	// ("." for the root).
	fs   engine.DirFS
	rel  string
	file engine.DirFile // nil for a preopen not yet opened, and for stdio
	// preopen is the guest path of a preopened directory, or "".
	preopen  string
	readOnly bool
	// canRead and canWrite are the open mode of a file.
	canRead, canWrite bool
	filetype          uint8
	flags             uint16
	base, inheriting  uint64
	// dirents is a directory listing being read by cookie.
	dirents []dirent
}

// New creates the descriptor table of a run: 0, 1 and 2 are cfg's
// standard streams, then each of cfg.Dirs in order.
func New(cfg engine.RunConfig) *State {
	st := &State{fds: map[uint32]*fdesc{}, stdin: cfg.Stdin, stdout: cfg.Stdout, stderr: cfg.Stderr}
	st.fds[0] = &fdesc{kind: kindStdin, filetype: filetypeUnknown, base: rightsStdin}
	st.fds[1] = &fdesc{kind: kindStdout, filetype: filetypeUnknown, base: rightsStdout}
	st.fds[2] = &fdesc{kind: kindStderr, filetype: filetypeUnknown, base: rightsStdout}
	for i, d := range cfg.Dirs {
		st.fds[uint32(3+i)] = &fdesc{
			kind: kindDir, fs: d.FS, rel: ".", preopen: d.GuestPath, readOnly: d.ReadOnly,
			filetype: filetypeDirectory, base: rightsDir, inheriting: rightsDir | rightsFile,
		}
	}
	return st
}

// Close closes every descriptor the guest left open, in descriptor order.
func (st *State) Close() {
	st.mu.Lock()
	fds := make([]uint32, 0, len(st.fds))
	for fd := range st.fds {
		fds = append(fds, fd)
	}
	sort.Slice(fds, func(i, j int) bool { return fds[i] < fds[j] })
	var files []engine.DirFile
	for _, fd := range fds {
		if f := st.fds[fd].file; f != nil {
			files = append(files, f)
		}
	}
	st.fds = map[uint32]*fdesc{}
	st.mu.Unlock()
	for _, f := range files {
		f.Close()
	}
}

func (st *State) get(fd uint32) (*fdesc, uint16) {
	st.mu.Lock()
	defer st.mu.Unlock()
	d, ok := st.fds[fd]
	if !ok {
		return nil, errnoBadf
	}
	return d, 0
}

// add gives d the lowest free descriptor.
func (st *State) add(d *fdesc) uint32 {
	st.mu.Lock()
	defer st.mu.Unlock()
	fd := uint32(3)
	for {
		if _, used := st.fds[fd]; !used {
			st.fds[fd] = d
			return fd
		}
		fd++
	}
}

// dirent is one entry of a directory listing.
type dirent struct {
	name  string
	ino   uint64
	ftype uint8
}

func filetypeOf(m fs.FileMode) uint8 {
	switch {
	case m.IsDir():
		return filetypeDirectory
	case m&fs.ModeSymlink != 0:
		return filetypeSymlink
	case m&fs.ModeCharDevice != 0:
		return filetypeCharDevice
	case m&fs.ModeDevice != 0:
		return filetypeBlockDevice
	case m&fs.ModeSocket != 0:
		return filetypeSocketStream
	case m.IsRegular():
		return filetypeRegular
	}
	return filetypeUnknown
}
