package wasip1

import (
	"context"
	"encoding/binary"
	"io"
	"io/fs"
	"strings"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/blockhost/blockhost/abi"
	"github.com/blockhost/blockhost/host/engine"
)

// Names lists the functions of ModuleName this package serves; an engine
// serves the rest (args, environment, clocks, random, proc_exit,
// sched_yield) itself.
func Names() []string {
	out := make([]string, len(table))
	for i, f := range table {
		out[i] = f.name
	}
	return out
}

// Functions returns the functions of ModuleName this package serves. Each
// finds the run's State in its context (With); called without one, it
// answers EBADF (ENOSYS for poll_oneoff) as if no descriptor existed.
func Functions() []engine.HostFunction {
	out := make([]engine.HostFunction, len(table))
	for i, f := range table {
		fn := f.fn
		out[i] = engine.HostFunction{
			Name:         f.name,
			Signature:    signature(f.params),
			StopWhenDone: true,
			Func: func(ctx context.Context, mem engine.Memory, stack []uint64) {
				st := stateOf(ctx)
				if st == nil {
					stack[0] = uint64(errnoBadf)
					return
				}
				c := &call{ctx: ctx, st: st, mem: mem, stack: stack}
				stack[0] = uint64(fn(c))
			},
		}
	}
	return out
}

// signature turns "iIi" (i32, i64, i32) into parameters; every function
// returns an errno as i32.
func signature(params string) abi.Signature {
	sig := abi.Signature{Results: []abi.ValueType{abi.I32}}
	for _, p := range params {
		if p == 'I' {
			sig.Params = append(sig.Params, abi.I64)
		} else {
			sig.Params = append(sig.Params, abi.I32)
		}
	}
	return sig
}

type function struct {
	name   string
	params string
	fn     func(c *call) uint16
}

var table = []function{
	{"fd_advise", "iIIi", fdAdvise},
	{"fd_allocate", "iII", fdAllocate},
	{"fd_close", "i", fdClose},
	{"fd_datasync", "i", fdSync},
	{"fd_fdstat_get", "ii", fdFdstatGet},
	{"fd_fdstat_set_flags", "ii", fdFdstatSetFlags},
	{"fd_fdstat_set_rights", "iII", fdFdstatSetRights},
	{"fd_filestat_get", "ii", fdFilestatGet},
	{"fd_filestat_set_size", "iI", fdFilestatSetSize},
	{"fd_filestat_set_times", "iIIi", fdFilestatSetTimes},
	{"fd_pread", "iiiIi", fdPread},
	{"fd_prestat_get", "ii", fdPrestatGet},
	{"fd_prestat_dir_name", "iii", fdPrestatDirName},
	{"fd_pwrite", "iiiIi", fdPwrite},
	{"fd_read", "iiii", fdRead},
	{"fd_readdir", "iiiIi", fdReaddir},
	{"fd_renumber", "ii", fdRenumber},
	{"fd_seek", "iIii", fdSeek},
	{"fd_sync", "i", fdSync},
	{"fd_tell", "ii", fdTell},
	{"fd_write", "iiii", fdWrite},
	{"path_create_directory", "iii", pathCreateDirectory},
	{"path_filestat_get", "iiiii", pathFilestatGet},
	{"path_filestat_set_times", "iiiiIIi", pathFilestatSetTimes},
	{"path_link", "iiiiiii", pathLink},
	{"path_open", "iiiiiIIii", pathOpen},
	{"path_readlink", "iiiiii", pathReadlink},
	{"path_remove_directory", "iii", pathRemoveDirectory},
	{"path_rename", "iiiiii", pathRename},
	{"path_symlink", "iiiii", pathSymlink},
	{"path_unlink_file", "iii", pathUnlinkFile},
	{"poll_oneoff", "iiii", pollOneoff},
	{"sock_accept", "iii", sockAccept},
	{"sock_recv", "iiiiii", sockOther},
	{"sock_send", "iiiii", sockOther},
	{"sock_shutdown", "ii", sockOther},
}

// call is one call of a function: its arguments and the run.
type call struct {
	ctx   context.Context
	st    *State
	mem   engine.Memory
	stack []uint64
}

func (c *call) u32(i int) uint32 { return uint32(c.stack[i]) }
func (c *call) u64(i int) uint64 { return c.stack[i] }

func (c *call) fd(i int) (*fdesc, uint16) { return c.st.get(c.u32(i)) }

func (c *call) read(off, n uint32) ([]byte, bool) {
	if c.mem == nil {
		return nil, false
	}
	return c.mem.Read(off, n)
}

func (c *call) putU32(off, v uint32) bool { return c.mem != nil && c.mem.WriteUint32Le(off, v) }
func (c *call) putU64(off uint32, v uint64) bool {
	return c.mem != nil && c.mem.WriteUint64Le(off, v)
}

func (c *call) getU64(off uint32) (uint64, bool) {
	b, ok := c.read(off, 8)
	if !ok {
		return 0, false
	}
	return binary.LittleEndian.Uint64(b), true
}

// iovecs returns views of the guest's buffers described by the iovec
// array at iovs.
func (c *call) iovecs(iovs, n uint32) ([][]byte, uint16) {
	arr, ok := c.read(iovs, n*8)
	if !ok || uint64(n)*8 > 1<<32 {
		return nil, errnoFault
	}
	out := make([][]byte, n)
	for i := range n {
		buf, ok := c.read(binary.LittleEndian.Uint32(arr[i*8:]), binary.LittleEndian.Uint32(arr[i*8+4:]))
		if !ok {
			return nil, errnoFault
		}
		out[i] = buf
	}
	return out, 0
}

// path reads a path argument.
func (c *call) path(ptr, n uint32) (string, uint16) {
	b, ok := c.read(ptr, n)
	if !ok {
		return "", errnoFault
	}
	if !utf8.Valid(b) {
		return "", errnoIlseq
	}
	return string(b), 0
}

// need fails unless d has every right in r.
func need(d *fdesc, r uint64) uint16 {
	if d.base&r != r {
		return errnoNotcapable
	}
	return 0
}

// resolved is a guest path resolved against a directory descriptor.
type resolved struct {
	dir *fdesc
	// name is relative to dir.fs's root, without a trailing slash; slash
	// is true when the guest's path required a directory.
	name  string
	slash bool
}

// at resolves the path argument (ptr, n) against the directory descriptor
// in argument i. The resolution is lexical: "." elements are dropped and
// ".." removes the element before it; a path that climbs above the
// directory descriptor, or is absolute, is refused with EPERM, as
// wasmtime does.
func (c *call) at(i int, ptr, n uint32, right uint64) (resolved, uint16) {
	d, e := c.fd(i)
	if e != 0 {
		return resolved{}, e
	}
	if d.kind != kindDir {
		return resolved{}, errnoNotdir
	}
	if e := need(d, right); e != 0 {
		return resolved{}, e
	}
	p, e := c.path(ptr, n)
	if e != 0 {
		return resolved{}, e
	}
	return resolve(d, p)
}

func resolve(d *fdesc, p string) (resolved, uint16) {
	switch {
	case p == "":
		return resolved{}, errnoNoent
	case strings.IndexByte(p, 0) >= 0:
		return resolved{}, errnoInval
	case p[0] == '/':
		return resolved{}, errnoPerm
	}
	var elems []string
	if d.rel != "." {
		elems = strings.Split(d.rel, "/")
	}
	floor := len(elems) // ".." may not climb above the descriptor's directory
	parts := strings.Split(p, "/")
	slash := false
	for i, e := range parts {
		last := i == len(parts)-1
		switch e {
		case "":
			slash = slash || last
		case ".":
			slash = slash || last
		case "..":
			if len(elems) == floor {
				return resolved{}, errnoPerm
			}
			elems = elems[:len(elems)-1]
			slash = slash || last
		default:
			elems = append(elems, e)
		}
	}
	name := strings.Join(elems, "/")
	if name == "" {
		name = "."
	}
	return resolved{dir: d, name: name, slash: slash}, 0
}

// arg is the name as a DirFS takes it, with a trailing slash when the
// guest required a directory.
func (r resolved) arg() string {
	if r.slash && r.name != "." {
		return r.name + "/"
	}
	return r.name
}

// ---- descriptors ----

func fdClose(c *call) uint16 {
	fd := c.u32(0)
	c.st.mu.Lock()
	d, ok := c.st.fds[fd]
	if ok {
		delete(c.st.fds, fd)
	}
	c.st.mu.Unlock()
	if !ok {
		return errnoBadf
	}
	if d.file != nil {
		return errnoOf(d.file.Close())
	}
	return 0
}

func fdRenumber(c *call) uint16 {
	from, to := c.u32(0), c.u32(1)
	c.st.mu.Lock()
	df, okf := c.st.fds[from]
	dt, okt := c.st.fds[to]
	if !okf || !okt {
		c.st.mu.Unlock()
		return errnoBadf
	}
	if from == to {
		c.st.mu.Unlock()
		return 0
	}
	c.st.fds[to] = df
	delete(c.st.fds, from)
	c.st.mu.Unlock()
	if dt.file != nil {
		dt.file.Close()
	}
	return 0
}

func fdPrestatGet(c *call) uint16 {
	d, e := c.fd(0)
	if e != 0 {
		return e
	}
	if d.preopen == "" {
		return errnoBadf
	}
	b := make([]byte, 8)
	binary.LittleEndian.PutUint32(b[4:], uint32(len(d.preopen)))
	if c.mem == nil || !c.mem.Write(c.u32(1), b) {
		return errnoFault
	}
	return 0
}

func fdPrestatDirName(c *call) uint16 {
	d, e := c.fd(0)
	if e != 0 {
		return e
	}
	if d.preopen == "" {
		return errnoBadf
	}
	n := c.u32(2)
	if int(n) < len(d.preopen) {
		return errnoNametoolong
	}
	if c.mem == nil || !c.mem.Write(c.u32(1), []byte(d.preopen)) {
		return errnoFault
	}
	return 0
}

func fdFdstatGet(c *call) uint16 {
	d, e := c.fd(0)
	if e != 0 {
		return e
	}
	b := make([]byte, fdstatSize)
	b[0] = d.filetype
	binary.LittleEndian.PutUint16(b[2:], d.flags)
	binary.LittleEndian.PutUint64(b[8:], d.base)
	binary.LittleEndian.PutUint64(b[16:], d.inheriting)
	if c.mem == nil || !c.mem.Write(c.u32(1), b) {
		return errnoFault
	}
	return 0
}

func fdFdstatSetFlags(c *call) uint16 {
	d, e := c.fd(0)
	if e != 0 {
		return e
	}
	if e := need(d, rightFdFdstatSetFlags); e != 0 {
		return e
	}
	flags := uint16(c.u32(1))
	if flags&^(fdflagAppend|fdflagDsync|fdflagNonblock|fdflagRsync|fdflagSync) != 0 {
		return errnoInval
	}
	if d.kind == kindFile && (flags^d.flags)&fdflagAppend != 0 {
		if !d.canWrite {
			return errnoBadf
		}
		if err := d.file.SetAppend(flags&fdflagAppend != 0); err != nil {
			return errnoOf(err)
		}
	}
	c.st.mu.Lock()
	d.flags = flags
	c.st.mu.Unlock()
	return 0
}

func fdFdstatSetRights(c *call) uint16 {
	d, e := c.fd(0)
	if e != 0 {
		return e
	}
	base, inh := c.u64(1), c.u64(2)
	c.st.mu.Lock()
	defer c.st.mu.Unlock()
	if base&^d.base != 0 || inh&^d.inheriting != 0 {
		return errnoNotcapable
	}
	d.base, d.inheriting = base, inh
	return 0
}

// ---- file contents ----

// file returns the descriptor in argument 0 when it is a file open with
// the right r.
func (c *call) file(r uint64) (*fdesc, uint16) {
	d, e := c.fd(0)
	if e != 0 {
		return nil, e
	}
	if d.kind == kindDir {
		if r&(rightFdRead|rightFdWrite|rightFdSeek|rightFdTell) != 0 {
			return nil, errnoBadf
		}
		if e := need(d, r); e != 0 {
			return nil, e
		}
		return d, 0
	}
	if e := need(d, r); e != 0 {
		return nil, e
	}
	return d, 0
}

func fdRead(c *call) uint16  { return c.readv(-1, c.u32(3)) }
func fdPread(c *call) uint16 { return c.readv(int64(c.u64(3)), c.u32(4)) }

// readv reads into the iovecs of arguments 1 and 2, at off (or the
// current position when off < 0), and stores the count at nread.
// vectored checks descriptor 0 of a read (reading) or write call and
// reads its iovecs (parameters 1 and 2); off ≥ 0 is a positioned call.
func (c *call) vectored(off int64, reading bool) (*fdesc, [][]byte, uint16) {
	d, e := c.fd(0)
	if e != 0 {
		return nil, nil, e
	}
	wrongStream, may, right := kindStdin, d.canWrite, rightFdWrite
	if reading {
		wrongStream, may, right = kindStdout, d.canRead, rightFdRead
	}
	switch {
	case d.kind == kindDir:
		return nil, nil, errnoIsdir
	case d.kind == wrongStream, reading && d.kind == kindStderr:
		return nil, nil, errnoBadf
	case off >= 0 && d.kind != kindFile:
		return nil, nil, errnoSpipe
	case d.kind == kindFile && !may:
		return nil, nil, errnoBadf
	}
	if e := need(d, right); e != 0 {
		return nil, nil, e
	}
	if off >= 0 {
		if e := need(d, rightFdSeek); e != 0 {
			return nil, nil, e
		}
	}
	iovs, e := c.iovecs(c.u32(1), c.u32(2))
	if e != 0 {
		return nil, nil, e
	}
	return d, iovs, 0
}

func (c *call) readv(off int64, nread uint32) uint16 {
	d, iovs, e := c.vectored(off, true)
	if e != 0 {
		return e
	}
	var total uint32
	for _, buf := range iovs {
		if len(buf) == 0 {
			continue
		}
		var n int
		var err error
		switch {
		case d.kind == kindStdin && c.st.stdin == nil:
			err = io.EOF
		case d.kind == kindStdin:
			n, err = c.st.stdin.Read(buf)
		case off >= 0:
			n, err = d.file.ReadAt(buf, off+int64(total))
		default:
			n, err = d.file.Read(buf)
		}
		total += uint32(n)
		if err != nil && err != io.EOF {
			if total > 0 {
				break
			}
			return errnoOf(err)
		}
		if err == io.EOF || n < len(buf) {
			break
		}
	}
	if !c.putU32(nread, total) {
		return errnoFault
	}
	return 0
}

func fdWrite(c *call) uint16  { return c.writev(-1, c.u32(3)) }
func fdPwrite(c *call) uint16 { return c.writev(int64(c.u64(3)), c.u32(4)) }

func (c *call) writev(off int64, nwritten uint32) uint16 {
	d, iovs, e := c.vectored(off, false)
	if e != 0 {
		return e
	}
	var total uint32
	for _, buf := range iovs {
		if len(buf) == 0 {
			continue
		}
		var n int
		var err error
		switch d.kind {
		case kindStdout, kindStderr:
			w := c.st.stdout
			if d.kind == kindStderr {
				w = c.st.stderr
			}
			if w == nil {
				n = len(buf)
				break
			}
			if n, err = w.Write(buf); err != nil && n == 0 {
				// The host's output cap: the writer recorded it.
				err = syscall.ENOSPC
			}
		default:
			if off >= 0 {
				n, err = d.file.WriteAt(buf, off+int64(total))
			} else {
				n, err = d.file.Write(buf)
			}
		}
		total += uint32(n)
		if err != nil {
			if total > 0 {
				break
			}
			return errnoOf(err)
		}
	}
	if d.kind == kindFile && d.flags&(fdflagSync|fdflagDsync) != 0 {
		if err := d.file.Sync(); err != nil {
			return errnoOf(err)
		}
	}
	if !c.putU32(nwritten, total) {
		return errnoFault
	}
	return 0
}

func fdSeek(c *call) uint16 {
	d, e := c.fd(0)
	if e != 0 {
		return e
	}
	if d.kind == kindDir {
		return errnoBadf
	}
	if d.kind != kindFile {
		return errnoSpipe
	}
	off, whence := int64(c.u64(1)), uint8(c.u32(2))
	r := rightFdSeek
	if whence == whenceCur && off == 0 {
		r = rightFdTell
	}
	if e := need(d, r); e != 0 {
		return e
	}
	var w int
	switch whence {
	case whenceSet:
		w = io.SeekStart
	case whenceCur:
		w = io.SeekCurrent
	case whenceEnd:
		w = io.SeekEnd
	default:
		return errnoInval
	}
	pos, err := d.file.Seek(off, w)
	if err != nil {
		return errnoOf(err)
	}
	if !c.putU64(c.u32(3), uint64(pos)) {
		return errnoFault
	}
	return 0
}

func fdTell(c *call) uint16 {
	d, e := c.fd(0)
	if e != 0 {
		return e
	}
	if d.kind == kindDir {
		return errnoBadf
	}
	if d.kind != kindFile {
		return errnoSpipe
	}
	if e := need(d, rightFdTell); e != 0 {
		return e
	}
	pos, err := d.file.Seek(0, io.SeekCurrent)
	if err != nil {
		return errnoOf(err)
	}
	if !c.putU64(c.u32(1), uint64(pos)) {
		return errnoFault
	}
	return 0
}

func fdSync(c *call) uint16 {
	d, e := c.fd(0)
	if e != 0 {
		return e
	}
	if d.kind != kindFile {
		if d.kind == kindDir {
			return 0
		}
		return errnoInval
	}
	return errnoOf(d.file.Sync())
}

func fdAdvise(c *call) uint16 {
	d, e := c.fd(0)
	if e != 0 {
		return e
	}
	if c.u32(3) > 5 {
		return errnoInval
	}
	if d.kind == kindDir {
		return errnoBadf
	}
	if d.kind != kindFile {
		return errnoSpipe
	}
	return need(d, rightFdAdvise)
}

func fdAllocate(c *call) uint16 {
	d, e := c.fd(0)
	if e != 0 {
		return e
	}
	if d.kind == kindDir {
		return errnoBadf
	}
	if d.kind != kindFile {
		return errnoSpipe
	}
	if e := need(d, rightFdAllocate); e != 0 {
		return e
	}
	if !d.canWrite {
		return errnoBadf
	}
	off, n := c.u64(1), c.u64(2)
	if n == 0 || off+n < off || off+n > 1<<62 {
		return errnoInval
	}
	info, err := d.file.Stat()
	if err != nil {
		return errnoOf(err)
	}
	if end := int64(off + n); end > info.Size() {
		return errnoOf(d.file.Truncate(end))
	}
	return 0
}

func fdFilestatGet(c *call) uint16 {
	d, e := c.fd(0)
	if e != 0 {
		return e
	}
	if e := need(d, rightFdFilestatGet); e != 0 && d.kind >= kindDir {
		return e
	}
	var info fs.FileInfo
	var err error
	switch {
	case d.kind < kindDir:
		b := make([]byte, filestatSize)
		b[16] = d.filetype
		if c.mem == nil || !c.mem.Write(c.u32(1), b) {
			return errnoFault
		}
		return 0
	case d.file != nil:
		info, err = d.file.Stat()
	default:
		info, err = d.fs.Stat(d.rel)
	}
	if err != nil {
		return errnoOf(err)
	}
	return c.putFilestat(c.u32(1), info)
}

func (c *call) putFilestat(at uint32, info fs.FileInfo) uint16 {
	b := make([]byte, filestatSize)
	b[16] = filetypeOf(info.Mode())
	binary.LittleEndian.PutUint64(b[32:], uint64(info.Size()))
	st := sysStat(info)
	binary.LittleEndian.PutUint64(b[0:], st.dev)
	binary.LittleEndian.PutUint64(b[8:], st.ino)
	binary.LittleEndian.PutUint64(b[24:], st.nlink)
	binary.LittleEndian.PutUint64(b[40:], st.atim)
	binary.LittleEndian.PutUint64(b[48:], uint64(info.ModTime().UnixNano()))
	binary.LittleEndian.PutUint64(b[56:], st.ctim)
	if c.mem == nil || !c.mem.Write(at, b) {
		return errnoFault
	}
	return 0
}

func fdFilestatSetSize(c *call) uint16 {
	d, e := c.fd(0)
	if e != 0 {
		return e
	}
	if d.kind != kindFile {
		return errnoBadf
	}
	if e := need(d, rightFdFilestatSetSize); e != 0 {
		return e
	}
	if !d.canWrite {
		return errnoBadf
	}
	size := c.u64(1)
	if size > 1<<62 {
		return errnoFbig
	}
	return errnoOf(d.file.Truncate(int64(size)))
}

// times turns set-times arguments into the times to set (nil: unchanged).
func times(atim, mtim uint64, fst uint16) (a, m *time.Time, e uint16) {
	if fst&^(fstflagAtim|fstflagAtimNow|fstflagMtim|fstflagMtimNow) != 0 ||
		fst&(fstflagAtim|fstflagAtimNow) == fstflagAtim|fstflagAtimNow ||
		fst&(fstflagMtim|fstflagMtimNow) == fstflagMtim|fstflagMtimNow {
		return nil, nil, errnoInval
	}
	now := time.Now()
	switch {
	case fst&fstflagAtimNow != 0:
		a = &now
	case fst&fstflagAtim != 0:
		t := time.Unix(0, int64(atim))
		a = &t
	}
	switch {
	case fst&fstflagMtimNow != 0:
		m = &now
	case fst&fstflagMtim != 0:
		t := time.Unix(0, int64(mtim))
		m = &t
	}
	return a, m, 0
}

func fdFilestatSetTimes(c *call) uint16 {
	d, e := c.fd(0)
	if e != 0 {
		return e
	}
	if d.kind < kindDir {
		return errnoBadf
	}
	if e := need(d, rightFdFilestatSetTimes); e != 0 {
		return e
	}
	a, m, e := times(c.u64(1), c.u64(2), uint16(c.u32(3)))
	if e != 0 {
		return e
	}
	if a == nil && m == nil {
		return 0
	}
	if d.file != nil {
		return errnoOf(d.file.SetTimes(a, m))
	}
	return errnoOf(d.fs.SetTimes(d.rel, a, m, true))
}

// ---- directories ----

func fdReaddir(c *call) uint16 {
	d, e := c.fd(0)
	if e != 0 {
		return e
	}
	if d.kind != kindDir {
		return errnoNotdir
	}
	if e := need(d, rightFdReaddir); e != 0 {
		return e
	}
	buf, bufLen, cookie, usedPtr := c.u32(1), c.u32(2), c.u64(3), c.u32(4)
	out, ok := c.read(buf, bufLen)
	if !ok {
		return errnoFault
	}
	if cookie == 0 || d.dirents == nil {
		ents, e := list(d)
		if e != 0 {
			return e
		}
		d.dirents = ents
	}
	if cookie > uint64(len(d.dirents)) {
		if !c.putU32(usedPtr, 0) {
			return errnoFault
		}
		return 0
	}
	used := 0
	for i := int(cookie); i < len(d.dirents) && used < len(out); i++ {
		ent := d.dirents[i]
		rec := make([]byte, direntHeaderSize+len(ent.name))
		binary.LittleEndian.PutUint64(rec[0:], uint64(i+1))
		binary.LittleEndian.PutUint64(rec[8:], ent.ino)
		binary.LittleEndian.PutUint32(rec[16:], uint32(len(ent.name)))
		rec[20] = ent.ftype
		copy(rec[direntHeaderSize:], ent.name)
		used += copy(out[used:], rec)
	}
	if !c.putU32(usedPtr, uint32(used)) {
		return errnoFault
	}
	return 0
}

// list reads a directory afresh: ".", "..", then its entries.
func list(d *fdesc) ([]dirent, uint16) {
	f, err := d.fs.OpenFile(d.rel, engine.OpenRead|engine.OpenDirectory, 0)
	if err != nil {
		return nil, errnoOf(err)
	}
	defer f.Close()
	self, err := f.Stat()
	if err != nil {
		return nil, errnoOf(err)
	}
	ents := []dirent{{name: ".", ino: inoOf(self), ftype: filetypeDirectory}, {name: "..", ftype: filetypeDirectory}}
	if d.rel != "." {
		parent := "."
		if i := strings.LastIndexByte(d.rel, '/'); i >= 0 {
			parent = d.rel[:i]
		}
		if info, err := d.fs.Stat(parent); err == nil {
			ents[1].ino = inoOf(info)
		}
	}
	for {
		batch, err := f.ReadDir(256)
		for _, e := range batch {
			ent := dirent{name: e.Name(), ftype: filetypeOf(e.Type())}
			if info, err := e.Info(); err == nil {
				ent.ino = inoOf(info)
			}
			ents = append(ents, ent)
		}
		if err == io.EOF || (err == nil && len(batch) == 0) {
			return ents, 0
		}
		if err != nil {
			return nil, errnoOf(err)
		}
	}
}

func inoOf(info fs.FileInfo) uint64 { return sysStat(info).ino }

// ---- paths ----

func pathOpen(c *call) uint16 {
	r, e := c.at(0, c.u32(2), c.u32(3), rightPathOpen)
	if e != 0 {
		return e
	}
	dirflags, oflags := c.u32(1), uint16(c.u32(4))
	base, inh, fdflags := c.u64(5), c.u64(6), uint16(c.u32(7))
	if oflags&^(oflagCreat|oflagDirectory|oflagExcl|oflagTrunc) != 0 {
		return errnoInval
	}
	if oflags&oflagDirectory != 0 && oflags&(oflagCreat|oflagTrunc) != 0 {
		return errnoInval
	}
	if oflags&oflagCreat != 0 {
		if e := need(r.dir, rightPathCreateFile); e != 0 {
			return e
		}
	}
	read := base&(rightFdRead|rightFdReaddir) != 0
	// Rights that only a writer uses open for writing. Not
	// FD_FILESTAT_SET_SIZE: Go's os.Open asks for it on read-only files.
	write := base&(rightFdDatasync|rightFdWrite|rightFdAllocate) != 0 ||
		fdflags&fdflagAppend != 0 || oflags&oflagTrunc != 0

	var flag engine.OpenFlag
	if read || !write {
		flag |= engine.OpenRead
	}
	if write {
		flag |= engine.OpenWrite
	}
	if fdflags&fdflagAppend != 0 {
		flag |= engine.OpenAppend
	}
	if oflags&oflagCreat != 0 {
		flag |= engine.OpenCreate
	}
	if oflags&oflagExcl != 0 {
		flag |= engine.OpenExclusive
	}
	if oflags&oflagTrunc != 0 {
		flag |= engine.OpenTruncate
	}
	if oflags&oflagDirectory != 0 {
		flag |= engine.OpenDirectory
	}
	if dirflags&lookupSymlinkFollow == 0 {
		flag |= engine.OpenNoFollow
	}
	if r.slash && flag&(engine.OpenCreate|engine.OpenWrite) != 0 {
		// A name that must be a directory is opened only as one.
		info, err := r.dir.fs.Stat(r.name)
		switch {
		case err == nil && info.IsDir():
			return errnoIsdir
		case err == nil:
			return errnoNotdir
		case oflags&oflagCreat != 0:
			return errnoIsdir
		}
		return errnoOf(err)
	}
	f, err := r.dir.fs.OpenFile(r.arg(), flag, 0o644)
	if err != nil {
		return errnoOf(err)
	}
	info, err := f.Stat()
	if err != nil {
		f.Close()
		return errnoOf(err)
	}
	nd := &fdesc{fs: r.dir.fs, rel: r.name, file: f, readOnly: r.dir.readOnly, flags: fdflags,
		canRead: flag&engine.OpenRead != 0, canWrite: write, filetype: filetypeOf(info.Mode())}
	if info.IsDir() {
		nd.kind = kindDir
		nd.base = base & r.dir.inheriting & rightsDir
		nd.inheriting = inh & r.dir.inheriting
	} else {
		nd.kind = kindFile
		nd.base = base & r.dir.inheriting & rightsFile
		nd.inheriting = 0
	}
	fd := c.st.add(nd)
	if !c.putU32(c.u32(8), fd) {
		return errnoFault
	}
	return 0
}

func pathFilestatGet(c *call) uint16 {
	r, e := c.at(0, c.u32(2), c.u32(3), rightPathFilestatGet)
	if e != 0 {
		return e
	}
	var info fs.FileInfo
	var err error
	if c.u32(1)&lookupSymlinkFollow != 0 {
		info, err = r.dir.fs.Stat(r.arg())
	} else {
		info, err = r.dir.fs.Lstat(r.arg())
	}
	if err != nil {
		return errnoOf(err)
	}
	if r.slash && !info.IsDir() {
		return errnoNotdir
	}
	return c.putFilestat(c.u32(4), info)
}

func pathFilestatSetTimes(c *call) uint16 {
	r, e := c.at(0, c.u32(2), c.u32(3), rightPathFilestatSetTimes)
	if e != 0 {
		return e
	}
	a, m, e := times(c.u64(4), c.u64(5), uint16(c.u32(6)))
	if e != 0 {
		return e
	}
	if e := c.dirOnly(r); e != 0 {
		return e
	}
	return errnoOf(r.dir.fs.SetTimes(r.name, a, m, c.u32(1)&lookupSymlinkFollow != 0))
}

// dirOnly checks a trailing slash: the name must then be a directory.
func (c *call) dirOnly(r resolved) uint16 {
	if !r.slash {
		return 0
	}
	info, err := r.dir.fs.Stat(r.name)
	if err != nil {
		return errnoOf(err)
	}
	if !info.IsDir() {
		return errnoNotdir
	}
	return 0
}

func pathCreateDirectory(c *call) uint16 {
	r, e := c.at(0, c.u32(1), c.u32(2), rightPathCreateDirectory)
	if e != 0 {
		return e
	}
	return errnoOf(r.dir.fs.Mkdir(r.name, 0o755))
}

func pathRemoveDirectory(c *call) uint16 {
	r, e := c.at(0, c.u32(1), c.u32(2), rightPathRemoveDirectory)
	if e != 0 {
		return e
	}
	if r.name == "." {
		return errnoBusy
	}
	return errnoOf(r.dir.fs.Rmdir(r.name))
}

func pathUnlinkFile(c *call) uint16 {
	r, e := c.at(0, c.u32(1), c.u32(2), rightPathUnlinkFile)
	if e != 0 {
		return e
	}
	if r.slash {
		info, err := r.dir.fs.Lstat(r.name)
		switch {
		case err != nil:
			return errnoOf(err)
		case info.IsDir():
			return errnoIsdir
		}
		return errnoNotdir
	}
	return errnoOf(r.dir.fs.Unlink(r.name))
}

func pathReadlink(c *call) uint16 {
	r, e := c.at(0, c.u32(1), c.u32(2), rightPathReadlink)
	if e != 0 {
		return e
	}
	target, err := r.dir.fs.Readlink(r.arg())
	if err != nil {
		return errnoOf(err)
	}
	buf, n := c.u32(3), c.u32(4)
	b := []byte(target)
	if uint32(len(b)) > n {
		b = b[:n]
	}
	if c.mem == nil || !c.mem.Write(buf, b) || !c.putU32(c.u32(5), uint32(len(b))) {
		return errnoFault
	}
	return 0
}

func pathSymlink(c *call) uint16 {
	target, e := c.path(c.u32(0), c.u32(1))
	if e != 0 {
		return e
	}
	r, e := c.at(2, c.u32(3), c.u32(4), rightPathSymlink)
	if e != 0 {
		return e
	}
	if target == "" {
		return errnoNoent
	}
	if r.slash {
		if _, err := r.dir.fs.Lstat(r.name); err == nil {
			return errnoExist
		}
		return errnoNoent
	}
	return errnoOf(r.dir.fs.Symlink(target, r.name))
}

func pathLink(c *call) uint16 {
	from, e := c.at(0, c.u32(2), c.u32(3), rightPathLinkSource)
	if e != 0 {
		return e
	}
	to, e := c.at(4, c.u32(5), c.u32(6), rightPathLinkTarget)
	if e != 0 {
		return e
	}
	if from.dir.fs != to.dir.fs {
		return errnoXdev
	}
	src := from.name
	if c.u32(1)&lookupSymlinkFollow != 0 {
		// Link what the name leads to, inside the tree.
		info, err := from.dir.fs.Lstat(src)
		if err == nil && info.Mode()&fs.ModeSymlink != 0 {
			return errnoInval
		}
	}
	if from.slash || to.slash {
		info, err := from.dir.fs.Lstat(src)
		switch {
		case err != nil:
			return errnoOf(err)
		case info.IsDir():
			return errnoPerm
		case to.slash:
			return errnoNoent
		}
		return errnoNotdir
	}
	return errnoOf(from.dir.fs.Link(src, to.name))
}

func pathRename(c *call) uint16 {
	from, e := c.at(0, c.u32(1), c.u32(2), rightPathRenameSource)
	if e != 0 {
		return e
	}
	to, e := c.at(3, c.u32(4), c.u32(5), rightPathRenameTarget)
	if e != 0 {
		return e
	}
	if from.dir.fs != to.dir.fs {
		return errnoXdev
	}
	if from.slash || to.slash {
		info, err := from.dir.fs.Lstat(from.name)
		if err != nil {
			return errnoOf(err)
		}
		if !info.IsDir() {
			return errnoNotdir
		}
	}
	return errnoOf(from.dir.fs.Rename(from.name, to.name))
}

// ---- sockets: a step has none ----

func sockAccept(c *call) uint16 {
	if _, e := c.fd(0); e != 0 {
		return e
	}
	return errnoNotsock
}

func sockOther(c *call) uint16 { return sockAccept(c) }

// ---- polling ----

// pollOneoff answers fd_read and fd_write subscriptions at once: every
// descriptor a step has — its standard streams, whose input is already
// all there, and files — is always ready. A poll with none of those waits
// for its earliest relative clock subscription, or until the run's
// context ends; absolute clock subscriptions are refused with ENOTSUP.
func pollOneoff(c *call) uint16 {
	in, out, n, neventsPtr := c.u32(0), c.u32(1), c.u32(2), c.u32(3)
	if n == 0 {
		return errnoInval
	}
	if uint64(n)*subscriptionSize > 1<<32 {
		return errnoInval
	}
	subs, ok := c.read(in, n*subscriptionSize)
	if !ok {
		return errnoFault
	}
	if _, ok := c.read(out, n*eventSize); !ok {
		return errnoFault
	}
	subs = append([]byte(nil), subs...)
	var events []byte
	wait := time.Duration(-1)
	var clocks []int
	for i := range n {
		s := subs[i*subscriptionSize:]
		ev := make([]byte, eventSize)
		copy(ev[0:8], s[0:8])
		ev[10] = s[8]
		switch s[8] {
		case 0: // clock
			flags := binary.LittleEndian.Uint16(s[40:])
			switch {
			case flags&1 != 0:
				return errnoNotsup
			case flags != 0:
				return errnoInval
			}
			d := time.Duration(min(binary.LittleEndian.Uint64(s[24:]), 1<<63-1))
			if wait < 0 || d < wait {
				wait = d
			}
			clocks = append(clocks, int(i))
		case 1, 2: // fd_read, fd_write
			fd := binary.LittleEndian.Uint32(s[16:])
			d, e := c.st.get(fd)
			switch {
			case e != 0:
				binary.LittleEndian.PutUint16(ev[8:], e)
			case s[8] == 1 && (d.kind == kindStdout || d.kind == kindStderr):
				binary.LittleEndian.PutUint16(ev[8:], errnoBadf)
			case s[8] == 2 && d.kind == kindStdin:
				binary.LittleEndian.PutUint16(ev[8:], errnoBadf)
			case d.kind == kindDir:
				binary.LittleEndian.PutUint16(ev[8:], errnoBadf)
			case s[8] == 1 && d.kind == kindFile:
				if info, err := d.file.Stat(); err == nil {
					pos, _ := d.file.Seek(0, io.SeekCurrent)
					binary.LittleEndian.PutUint64(ev[16:], uint64(max(info.Size()-pos, 0)))
				}
			case s[8] == 1 && d.kind == kindStdin:
				if l, ok := c.st.stdin.(interface{ Len() int }); ok {
					binary.LittleEndian.PutUint64(ev[16:], uint64(l.Len()))
				}
			}
			events = append(events, ev...)
		default:
			return errnoInval
		}
	}
	if len(events) == 0 {
		if wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-t.C:
			case <-c.ctx.Done():
				t.Stop()
				return errnoIntr
			}
		}
		for _, i := range clocks {
			ev := make([]byte, eventSize)
			copy(ev[0:8], subs[i*subscriptionSize:])
			events = append(events, ev...)
		}
	}
	if c.mem == nil || !c.mem.Write(out, events) || !c.putU32(neventsPtr, uint32(len(events)/eventSize)) {
		return errnoFault
	}
	return 0
}
