package fscap

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io/fs"

	"github.com/blockhost/blockhost/abi"
	"github.com/blockhost/blockhost/host/capability"
	"github.com/blockhost/blockhost/host/engine"
)

// Name is the capability's name in grants, audit records and abi.Functions.
const Name = abi.CapabilityFS

func init() { capability.Register(Capability{}) }

// Capability is the filesystem capability as the host sees it
// (host/capability): the fs_* host functions of docs/abi.md §9 and the
// step's WASI preopened directories, both through one Session, so both
// ways in share one policy, one set of quotas and one log. Each host
// function is a thin adapter: guest memory in, a Session call, a result
// code out.
type Capability struct{}

var _ capability.Capability = Capability{}

// Name returns "fs".
func (Capability) Name() string { return Name }

// Functions returns the fs_* host functions.
func (Capability) Functions() []capability.Func {
	return []capability.Func{
		capability.Fn(abi.FuncFSRead, (*stepState).read),
		capability.Fn(abi.FuncFSWrite, (*stepState).write),
		capability.Fn(abi.FuncFSAppend, (*stepState).append),
		capability.Fn(abi.FuncFSStat, (*stepState).stat),
		capability.Fn(abi.FuncFSList, (*stepState).list),
		capability.Fn(abi.FuncFSRemove, (*stepState).remove),
		capability.Fn(abi.FuncFSMkdir, (*stepState).mkdir),
		capability.Fn(abi.FuncFSRename, (*stepState).rename),
		capability.LastErrorFunc(abi.FuncFSLastError, func(s *stepState) *capability.LastError { return &s.last }),
	}
}

// Open opens the step's grants, a []Grant or nil, and hands them to the
// engine as WASI preopened directories, confined by the same session.
// A step with no grants gets a session with none on its first call, so
// that its calls are refused, logged and capped like any other.
func (Capability) Open(ctx context.Context, step capability.Step, grant any) (capability.State, error) {
	s := &stepState{step: step}
	var grants []Grant
	switch g := grant.(type) {
	case nil:
	case []Grant:
		grants = g
	default:
		return nil, capability.ErrNoGrant
	}
	if len(grants) == 0 {
		return s, nil
	}
	sess, err := Open(ctx, grants, s.config())
	if err != nil {
		if ctx.Err() != nil {
			return s, nil // the step is over; its status says so
		}
		step.Logger().Error("cannot open the step's directories", "error", err)
		return nil, abi.NewError(abi.CodeResourceUnavailable, abi.ClassPermanent, err.Error())
	}
	s.session = sess
	step.AddDirs(sess.Dirs()...)
	return s, nil
}

// stepState is one step's filesystem state.
type stepState struct {
	step    capability.Step
	session *Session
	last    capability.LastError
}

func (s *stepState) config() Config {
	return Config{
		Logger: s.step.Logger(),
		// A quota refusal ends the step as quota_exceeded even if the block
		// carries on, as the output cap does (docs/abi.md §6, rule 5).
		OnQuota: func(err error) { s.step.SetErr(StepError(err)) },
	}
}

// Close closes the session.
func (s *stepState) Close() {
	if s.session != nil {
		s.session.Close()
	}
}

// begin starts an fs_* call: the session, opened with no grants if the
// step has none, and the path argument.
func (s *stepState) begin(ctx context.Context, mem engine.Memory, pathPtr, pathLen uint32) (string, abi.Result) {
	if s.session == nil {
		s.session, _ = Open(ctx, nil, s.config())
	}
	if mem == nil {
		return "", s.last.Invalid("the block has no memory")
	}
	if pathLen > abi.FSMaxPath {
		// Checked before the bytes are read, so that no length is too big.
		return "", s.last.Invalid("the path is longer than 4096 bytes")
	}
	b, ok := mem.Read(pathPtr, pathLen)
	if !ok {
		return "", s.last.Invalid("the path is out of bounds")
	}
	return string(b), abi.ResultOK
}

// failed records err as the last error and returns its result. An
// operation cut short by the end of the step tells the host the guest
// has seen the end.
func (s *stepState) failed(err error) abi.Result {
	if err == nil {
		return abi.ResultOK
	}
	s.last.Set(StepError(err))
	if errors.Is(err, ErrStepEnded) {
		s.step.SawEnd()
	}
	return Classify(err).Result
}

// read is fs_read(path_ptr, path_len, offset i64, buf_ptr, buf_len,
// n_ptr) -> result.
func (s *stepState) read(ctx context.Context, mem engine.Memory, args []uint64) abi.Result {
	path, r := s.begin(ctx, mem, uint32(args[0]), uint32(args[1]))
	if r != abi.ResultOK {
		return r
	}
	off, buf, bufLen, nPtr := int64(args[2]), uint32(args[3]), uint32(args[4]), uint32(args[5])
	if _, ok := mem.Read(nPtr, 4); !ok {
		return s.last.Invalid("n_ptr is out of bounds")
	}
	if _, ok := mem.Read(buf, bufLen); !ok {
		return s.last.Invalid("the buffer is out of bounds")
	}
	if off < 0 {
		return s.last.Invalid("negative offset")
	}
	var n uint32
	_, err := s.session.ReadAt(ctx, path, off, int64(bufLen), func(p []byte) error {
		mem.Write(buf+n, p)
		n += uint32(len(p))
		return nil
	})
	if err != nil {
		return s.failed(err)
	}
	mem.WriteUint32Le(nPtr, n)
	return abi.ResultOK
}

// write is fs_write(path_ptr, path_len, data_ptr, data_len, flags) ->
// result.
func (s *stepState) write(ctx context.Context, mem engine.Memory, args []uint64) abi.Result {
	path, r := s.begin(ctx, mem, uint32(args[0]), uint32(args[1]))
	if r != abi.ResultOK {
		return r
	}
	flags := uint32(args[4])
	if flags&^abi.FSWriteExclusive != 0 {
		return s.last.Invalid("unknown write flags")
	}
	data, ok := mem.Read(uint32(args[2]), uint32(args[3]))
	if !ok {
		return s.last.Invalid("the data is out of bounds")
	}
	var wf WriteFlag
	if flags&abi.FSWriteExclusive != 0 {
		wf = WriteExclusive
	}
	// The session copies the data chunk by chunk on this goroutine; guest
	// memory never reaches a call that may be abandoned.
	_, err := s.session.Write(ctx, path, bytes.NewReader(data), int64(len(data)), wf)
	return s.failed(err)
}

// append is fs_append(path_ptr, path_len, data_ptr, data_len) -> result.
func (s *stepState) append(ctx context.Context, mem engine.Memory, args []uint64) abi.Result {
	path, r := s.begin(ctx, mem, uint32(args[0]), uint32(args[1]))
	if r != abi.ResultOK {
		return r
	}
	data, ok := mem.Read(uint32(args[2]), uint32(args[3]))
	if !ok {
		return s.last.Invalid("the data is out of bounds")
	}
	_, err := s.session.Append(ctx, path, bytes.NewReader(data), int64(len(data)))
	return s.failed(err)
}

// stat is fs_stat(path_ptr, path_len, stat_ptr) -> result.
func (s *stepState) stat(ctx context.Context, mem engine.Memory, args []uint64) abi.Result {
	path, r := s.begin(ctx, mem, uint32(args[0]), uint32(args[1]))
	if r != abi.ResultOK {
		return r
	}
	statPtr := uint32(args[2])
	if _, ok := mem.Read(statPtr, abi.FSStatSize); !ok {
		return s.last.Invalid("stat_ptr is out of bounds")
	}
	info, err := s.session.Stat(ctx, path)
	if err != nil {
		return s.failed(err)
	}
	var b [abi.FSStatSize]byte
	binary.LittleEndian.PutUint64(b[0:], uint64(max(info.Size(), 0)))
	binary.LittleEndian.PutUint64(b[8:], uint64(info.ModTime().UnixNano()))
	binary.LittleEndian.PutUint32(b[16:], uint32(fsKind(info.Mode())))
	binary.LittleEndian.PutUint32(b[20:], uint32(info.Mode().Perm()))
	mem.Write(statPtr, b[:])
	return abi.ResultOK
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

// list is fs_list(path_ptr, path_len, buf_ptr, buf_len, n_ptr) -> result.
// Each entry is its kind (one byte), its name and a NUL; when the buffer
// is too small nothing is written but the length needed, and the result
// is limit. A directory too large to list is limit with a length of 0.
func (s *stepState) list(ctx context.Context, mem engine.Memory, args []uint64) abi.Result {
	path, r := s.begin(ctx, mem, uint32(args[0]), uint32(args[1]))
	if r != abi.ResultOK {
		return r
	}
	buf, bufLen, nPtr := uint32(args[2]), uint32(args[3]), uint32(args[4])
	if _, ok := mem.Read(nPtr, 4); !ok {
		return s.last.Invalid("n_ptr is out of bounds")
	}
	if _, ok := mem.Read(buf, bufLen); !ok {
		return s.last.Invalid("the buffer is out of bounds")
	}
	ents, err := s.session.ReadDir(ctx, path)
	if err != nil {
		r := s.failed(err)
		if r == abi.ResultLimit {
			// Too many entries, not too small a buffer: no size would do.
			mem.WriteUint32Le(nPtr, 0)
		}
		return r
	}
	var out []byte
	for _, e := range ents {
		out = append(out, byte(fsKind(e.Type())))
		out = append(out, e.Name()...)
		out = append(out, 0)
	}
	r, problem := capability.CopyOut(mem, out, buf, bufLen, nPtr)
	switch r {
	case abi.ResultLimit:
		s.last.Set(abi.NewError(abi.CodeInvalidInput, abi.ClassPermanent, "the buffer is too small"))
	case abi.ResultInvalid:
		s.last.Invalid(problem)
	}
	return r
}

// remove is fs_remove(path_ptr, path_len) -> result.
func (s *stepState) remove(ctx context.Context, mem engine.Memory, args []uint64) abi.Result {
	path, r := s.begin(ctx, mem, uint32(args[0]), uint32(args[1]))
	if r != abi.ResultOK {
		return r
	}
	return s.failed(s.session.Remove(ctx, path))
}

// mkdir is fs_mkdir(path_ptr, path_len) -> result.
func (s *stepState) mkdir(ctx context.Context, mem engine.Memory, args []uint64) abi.Result {
	path, r := s.begin(ctx, mem, uint32(args[0]), uint32(args[1]))
	if r != abi.ResultOK {
		return r
	}
	return s.failed(s.session.Mkdir(ctx, path))
}

// rename is fs_rename(from_ptr, from_len, to_ptr, to_len) -> result.
func (s *stepState) rename(ctx context.Context, mem engine.Memory, args []uint64) abi.Result {
	from, r := s.begin(ctx, mem, uint32(args[0]), uint32(args[1]))
	if r != abi.ResultOK {
		return r
	}
	toLen := uint32(args[3])
	if toLen > abi.FSMaxPath {
		return s.last.Invalid("the new path is longer than 4096 bytes")
	}
	to, ok := mem.Read(uint32(args[2]), toLen)
	if !ok {
		return s.last.Invalid("the new path is out of bounds")
	}
	return s.failed(s.session.Rename(ctx, from, string(to)))
}
