package host

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io/fs"

	"github.com/blockhost/blockhost/abi"
	"github.com/blockhost/blockhost/host/engine"
	"github.com/blockhost/blockhost/host/fscap"
)

// The filesystem capability's host functions (docs/abi.md §9). Each is a
// thin adapter: guest memory in, an fscap.Session call, a result code
// out. The session is the same one the step's WASI preopened directories
// go through, so both ways in share one policy, one set of quotas and one
// log.
func init() {
	registerHostFunctions(
		hostFunc(abi.FuncFSRead, fsRead),
		hostFunc(abi.FuncFSWrite, fsWrite),
		hostFunc(abi.FuncFSAppend, fsAppend),
		hostFunc(abi.FuncFSStat, fsStat),
		hostFunc(abi.FuncFSList, fsList),
		hostFunc(abi.FuncFSRemove, fsRemove),
		hostFunc(abi.FuncFSMkdir, fsMkdir),
		hostFunc(abi.FuncFSRename, fsRename),
		hostFunc(abi.FuncFSLastError, fsLastError),
	)
	registerOpener(openFS)
}

// fsStep is one step's filesystem state, used only by the goroutine
// running the guest.
type fsStep struct {
	session *fscap.Session
	// lastErr is the detail of the last fs_* call that failed.
	lastErr *abi.Error
}

// openFS opens the step's grants and hands them to the engine as WASI
// preopened directories, confined by the same session.
func openFS(ctx context.Context, st *stepState, g Grants, cfg *engine.RunConfig) *abi.Error {
	if len(g.FS) == 0 {
		return nil
	}
	s, err := fscap.Open(ctx, g.FS, st.fsConfig())
	if err != nil {
		if ctx.Err() != nil {
			return nil // the step is over; its status says so
		}
		st.log().Error("cannot open the step's directories", "error", err)
		return abi.NewError(abi.CodeResourceUnavailable, abi.ClassPermanent, err.Error())
	}
	st.fs = &fsStep{session: s}
	st.closers = append(st.closers, s.Close)
	cfg.Dirs = append(cfg.Dirs, s.Dirs()...)
	return nil
}

func (st *stepState) fsConfig() fscap.Config {
	return fscap.Config{
		Logger: st.log(),
		// A quota refusal ends the step as quota_exceeded even if the block
		// carries on, as the output cap does (docs/abi.md §6, rule 5).
		OnQuota: func(err error) { st.guestErr = fscap.StepError(err) },
	}
}

// fsState returns the step's filesystem state. A step with no grants gets
// a session with none, so that its calls are refused, logged and capped
// like any other.
func (st *stepState) fsState(ctx context.Context) *fsStep {
	if st.fs == nil {
		s, _ := fscap.Open(ctx, nil, st.fsConfig())
		st.fs = &fsStep{session: s}
		st.closers = append(st.closers, s.Close)
	}
	return st.fs
}

// fsBegin starts an fs_* call: the step's state and the path argument.
func fsBegin(ctx context.Context, mem engine.Memory, pathPtr, pathLen uint32) (*stepState, *fsStep, string, abi.Result) {
	st, r := enter(ctx)
	if r != abi.ResultOK {
		return nil, nil, "", r
	}
	fst := st.fsState(ctx)
	if mem == nil {
		return st, fst, "", fst.invalid("the block has no memory")
	}
	if pathLen > abi.FSMaxPath {
		// Checked before the bytes are read, so that no length is too big.
		return st, fst, "", fst.invalid("the path is longer than 4096 bytes")
	}
	b, ok := mem.Read(pathPtr, pathLen)
	if !ok {
		return st, fst, "", fst.invalid("the path is out of bounds")
	}
	return st, fst, string(b), abi.ResultOK
}

func (f *fsStep) invalid(msg string) abi.Result {
	f.lastErr = abi.NewError(abi.CodeInvalidInput, abi.ClassPermanent, msg)
	return abi.ResultInvalid
}

// failed records err as the last error and returns its result. An
// operation cut short by the end of the step tells the host the guest
// has seen the end.
func (f *fsStep) failed(st *stepState, err error) abi.Result {
	if err == nil {
		return abi.ResultOK
	}
	f.lastErr = fscap.StepError(err)
	if errors.Is(err, fscap.ErrStepEnded) {
		st.sawEnd = true
	}
	return fscap.Classify(err).Result
}

// fsRead is fs_read(path_ptr, path_len, offset i64, buf_ptr, buf_len,
// n_ptr) -> result.
func fsRead(ctx context.Context, mem engine.Memory, stack []uint64) {
	st, f, path, r := fsBegin(ctx, mem, uint32(stack[0]), uint32(stack[1]))
	if r != abi.ResultOK {
		ret(stack, r)
		return
	}
	off, buf, bufLen, nPtr := int64(stack[2]), uint32(stack[3]), uint32(stack[4]), uint32(stack[5])
	if _, ok := mem.Read(nPtr, 4); !ok {
		ret(stack, f.invalid("n_ptr is out of bounds"))
		return
	}
	if _, ok := mem.Read(buf, bufLen); !ok {
		ret(stack, f.invalid("the buffer is out of bounds"))
		return
	}
	if off < 0 {
		ret(stack, f.invalid("negative offset"))
		return
	}
	var n uint32
	_, err := f.session.ReadAt(ctx, path, off, int64(bufLen), func(p []byte) error {
		mem.Write(buf+n, p)
		n += uint32(len(p))
		return nil
	})
	if err != nil {
		ret(stack, f.failed(st, err))
		return
	}
	mem.WriteUint32Le(nPtr, n)
	ret(stack, abi.ResultOK)
}

// fsWrite is fs_write(path_ptr, path_len, data_ptr, data_len, flags) ->
// result.
func fsWrite(ctx context.Context, mem engine.Memory, stack []uint64) {
	st, f, path, r := fsBegin(ctx, mem, uint32(stack[0]), uint32(stack[1]))
	if r != abi.ResultOK {
		ret(stack, r)
		return
	}
	flags := uint32(stack[4])
	if flags&^abi.FSWriteExclusive != 0 {
		ret(stack, f.invalid("unknown write flags"))
		return
	}
	data, ok := mem.Read(uint32(stack[2]), uint32(stack[3]))
	if !ok {
		ret(stack, f.invalid("the data is out of bounds"))
		return
	}
	var wf fscap.WriteFlag
	if flags&abi.FSWriteExclusive != 0 {
		wf = fscap.WriteExclusive
	}
	// The session copies the data chunk by chunk on this goroutine; guest
	// memory never reaches a call that may be abandoned.
	_, err := f.session.Write(ctx, path, bytes.NewReader(data), int64(len(data)), wf)
	ret(stack, f.failed(st, err))
}

// fsAppend is fs_append(path_ptr, path_len, data_ptr, data_len) -> result.
func fsAppend(ctx context.Context, mem engine.Memory, stack []uint64) {
	st, f, path, r := fsBegin(ctx, mem, uint32(stack[0]), uint32(stack[1]))
	if r != abi.ResultOK {
		ret(stack, r)
		return
	}
	data, ok := mem.Read(uint32(stack[2]), uint32(stack[3]))
	if !ok {
		ret(stack, f.invalid("the data is out of bounds"))
		return
	}
	_, err := f.session.Append(ctx, path, bytes.NewReader(data), int64(len(data)))
	ret(stack, f.failed(st, err))
}

// fsStat is fs_stat(path_ptr, path_len, stat_ptr) -> result.
func fsStat(ctx context.Context, mem engine.Memory, stack []uint64) {
	st, f, path, r := fsBegin(ctx, mem, uint32(stack[0]), uint32(stack[1]))
	if r != abi.ResultOK {
		ret(stack, r)
		return
	}
	statPtr := uint32(stack[2])
	if _, ok := mem.Read(statPtr, abi.FSStatSize); !ok {
		ret(stack, f.invalid("stat_ptr is out of bounds"))
		return
	}
	info, err := f.session.Stat(ctx, path)
	if err != nil {
		ret(stack, f.failed(st, err))
		return
	}
	var b [abi.FSStatSize]byte
	binary.LittleEndian.PutUint64(b[0:], uint64(max(info.Size(), 0)))
	binary.LittleEndian.PutUint64(b[8:], uint64(info.ModTime().UnixNano()))
	binary.LittleEndian.PutUint32(b[16:], uint32(fsKind(info.Mode())))
	binary.LittleEndian.PutUint32(b[20:], uint32(info.Mode().Perm()))
	mem.Write(statPtr, b[:])
	ret(stack, abi.ResultOK)
}

func fsKind(m fs.FileMode) abi.FSKind {
	switch {
	case m.IsRegular():
		return abi.FSKindFile
	case m.IsDir():
		return abi.FSKindDir
	case m&fs.ModeSymlink != 0:
		return abi.FSKindSymlink
	}
	return abi.FSKindOther
}

// fsList is fs_list(path_ptr, path_len, buf_ptr, buf_len, n_ptr) ->
// result. Each entry is its kind (one byte), its name and a NUL; when the
// buffer is too small nothing is written but the length needed, and the
// result is limit. A directory too large to list is limit with a length
// of 0.
func fsList(ctx context.Context, mem engine.Memory, stack []uint64) {
	st, f, path, r := fsBegin(ctx, mem, uint32(stack[0]), uint32(stack[1]))
	if r != abi.ResultOK {
		ret(stack, r)
		return
	}
	buf, bufLen, nPtr := uint32(stack[2]), uint32(stack[3]), uint32(stack[4])
	if _, ok := mem.Read(nPtr, 4); !ok {
		ret(stack, f.invalid("n_ptr is out of bounds"))
		return
	}
	if _, ok := mem.Read(buf, bufLen); !ok {
		ret(stack, f.invalid("the buffer is out of bounds"))
		return
	}
	ents, err := f.session.ReadDir(ctx, path)
	if err != nil {
		r := f.failed(st, err)
		if r == abi.ResultLimit {
			// Too many entries, not too small a buffer: no size would do.
			mem.WriteUint32Le(nPtr, 0)
		}
		ret(stack, r)
		return
	}
	var out []byte
	for _, e := range ents {
		out = append(out, byte(fsKind(e.Type())))
		out = append(out, e.Name()...)
		out = append(out, 0)
	}
	ret(stack, f.copyOut(mem, out, buf, bufLen, nPtr))
}

// copyOut writes data to the guest's buffer and its length at nPtr, or,
// when the buffer is too small, only the length, with limit.
func (f *fsStep) copyOut(mem engine.Memory, data []byte, buf, bufLen, nPtr uint32) abi.Result {
	if uint64(bufLen) < uint64(len(data)) {
		mem.WriteUint32Le(nPtr, uint32(len(data)))
		f.lastErr = abi.NewError(abi.CodeInvalidInput, abi.ClassPermanent, "the buffer is too small")
		return abi.ResultLimit
	}
	if !mem.Write(buf, data) {
		return f.invalid("the buffer is out of bounds")
	}
	mem.WriteUint32Le(nPtr, uint32(len(data)))
	return abi.ResultOK
}

// fsRemove is fs_remove(path_ptr, path_len) -> result.
func fsRemove(ctx context.Context, mem engine.Memory, stack []uint64) {
	st, f, path, r := fsBegin(ctx, mem, uint32(stack[0]), uint32(stack[1]))
	if r != abi.ResultOK {
		ret(stack, r)
		return
	}
	ret(stack, f.failed(st, f.session.Remove(ctx, path)))
}

// fsMkdir is fs_mkdir(path_ptr, path_len) -> result.
func fsMkdir(ctx context.Context, mem engine.Memory, stack []uint64) {
	st, f, path, r := fsBegin(ctx, mem, uint32(stack[0]), uint32(stack[1]))
	if r != abi.ResultOK {
		ret(stack, r)
		return
	}
	ret(stack, f.failed(st, f.session.Mkdir(ctx, path)))
}

// fsRename is fs_rename(from_ptr, from_len, to_ptr, to_len) -> result.
func fsRename(ctx context.Context, mem engine.Memory, stack []uint64) {
	st, f, from, r := fsBegin(ctx, mem, uint32(stack[0]), uint32(stack[1]))
	if r != abi.ResultOK {
		ret(stack, r)
		return
	}
	toLen := uint32(stack[3])
	if toLen > abi.FSMaxPath {
		ret(stack, f.invalid("the new path is longer than 4096 bytes"))
		return
	}
	to, ok := mem.Read(uint32(stack[2]), toLen)
	if !ok {
		ret(stack, f.invalid("the new path is out of bounds"))
		return
	}
	ret(stack, f.failed(st, f.session.Rename(ctx, from, string(to))))
}

// fsLastError is fs_last_error(buf_ptr, buf_len, n_ptr) -> result.
func fsLastError(ctx context.Context, mem engine.Memory, stack []uint64) {
	st, r := enter(ctx)
	if r != abi.ResultOK {
		ret(stack, r)
		return
	}
	f := st.fsState(ctx)
	if mem == nil {
		ret(stack, abi.ResultInvalid)
		return
	}
	buf, bufLen, nPtr := uint32(stack[0]), uint32(stack[1]), uint32(stack[2])
	if _, ok := mem.Read(nPtr, 4); !ok {
		ret(stack, abi.ResultInvalid)
		return
	}
	if _, ok := mem.Read(buf, bufLen); !ok {
		ret(stack, abi.ResultInvalid)
		return
	}
	if f.lastErr == nil {
		ret(stack, abi.ResultNotFound)
		return
	}
	out, err := json.Marshal(f.lastErr)
	if err != nil {
		ret(stack, abi.ResultIO)
		return
	}
	// Fetching the detail must not replace it.
	saved := f.lastErr
	r = f.copyOut(mem, out, buf, bufLen, nPtr)
	f.lastErr = saved
	ret(stack, r)
}
