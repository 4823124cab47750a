package host

import (
	"context"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/blockhost/blockhost/abi"
	"github.com/blockhost/blockhost/host/engine"
)

// stepKey carries the *stepState of the running step in the context the
// engine hands to host functions.
type stepKey struct{}

// stepState is what host functions see of one step. It is touched only by
// the goroutine running the guest, and read by Run once the guest is done.
type stepState struct {
	block  *Block
	id     string
	input  []byte
	limits Limits

	output    cappedBuffer
	guestErr  *abi.Error
	hostCalls uint64
	// sawEnd is set when a host call found the step over: the guest has been
	// told, so whatever it does next does not change the status.
	sawEnd bool

	logState

	// closers release what capabilities opened for the step; they run when
	// the guest is done, in reverse order.
	closers []func()

	http *httpStep // the HTTP capability's state (hostcalls_http.go)
	fs   *fsStep   // the filesystem capability's state (hostcalls_fs.go)
}

// open prepares the step's capabilities from its grants. Each capability
// adds its opener with registerOpener; the error is the step's result when
// a grant cannot be honoured.
func (st *stepState) open(ctx context.Context, g Grants, cfg *engine.RunConfig) *abi.Error {
	for _, o := range openers {
		if err := o(ctx, st, g, cfg); err != nil {
			return err
		}
	}
	return nil
}

func (st *stepState) close() {
	for i := len(st.closers) - 1; i >= 0; i-- {
		st.closers[i]()
	}
	st.closers = nil
}

// openers prepare capabilities for a step, in registration order.
var openers []func(ctx context.Context, st *stepState, g Grants, cfg *engine.RunConfig) *abi.Error

// registerOpener adds a capability's per-step preparation. Call it from
// init only.
func registerOpener(o func(ctx context.Context, st *stepState, g Grants, cfg *engine.RunConfig) *abi.Error) {
	openers = append(openers, o)
}

// hostFunctions are the functions of the blockhost import module: the core
// ones here, and each capability's added from its file's init with
// registerHostFunctions.
var hostFunctions = []engine.HostFunction{
	hostFunc(abi.FuncInputLen, inputLen),
	hostFunc(abi.FuncInputRead, inputRead),
	hostFunc(abi.FuncOutputWrite, outputWrite),
	hostFunc(abi.FuncErrorSet, errorSet),
	hostFunc(abi.FuncLog, logCall),
	hostFunc(abi.FuncDeadline, deadline),
	hostFunc(abi.FuncCheck, check),
}

// registerHostFunctions adds host functions; each name must be in
// abi.Functions. Call it from init only.
func registerHostFunctions(fns ...engine.HostFunction) {
	for _, f := range fns {
		if _, ok := abi.Functions[f.Name]; !ok {
			panic("host: host function " + f.Name + " is not in abi.Functions")
		}
		for _, g := range hostFunctions {
			if g.Name == f.Name {
				panic("host: host function " + f.Name + " registered twice")
			}
		}
	}
	hostFunctions = append(hostFunctions, fns...)
}

// hostFunc pairs a host function with its ABI signature. Every blockhost
// function stops when done (docs/abi.md §4): entered after the step is
// over, or returning after it ended, it ends the run instead of returning
// to the guest, so no guest code runs after its step is over.
func hostFunc(name string, f func(context.Context, engine.Memory, []uint64)) engine.HostFunction {
	return engine.HostFunction{Name: name, Signature: abi.Functions[name], Func: f, StopWhenDone: true}
}

// maxMessage caps error and log messages from the guest.
const maxMessage = 4096

func hostModule() engine.HostModule {
	return engine.HostModule{Name: abi.ImportModule, Functions: hostFunctions}
}

// enter starts every host call: it counts the call and, once the step is
// over, answers timeout or cancelled without doing anything else.
func enter(ctx context.Context) (*stepState, abi.Result) {
	st, ok := ctx.Value(stepKey{}).(*stepState)
	if !ok {
		refuseDuringCapture(ctx)
		return nil, abi.ResultInvalid
	}
	st.hostCalls++
	if ctx.Err() != nil {
		st.sawEnd = true
		if isTimeout(ctx) {
			return st, abi.ResultTimeout
		}
		return st, abi.ResultCancelled
	}
	return st, abi.ResultOK
}

func ret(stack []uint64, r abi.Result) { stack[0] = uint64(r) }

func inputLen(ctx context.Context, mem engine.Memory, stack []uint64) {
	st, r := enter(ctx)
	if r != abi.ResultOK {
		ret(stack, r)
		return
	}
	if mem == nil || !mem.WriteUint32Le(uint32(stack[0]), uint32(len(st.input))) {
		ret(stack, abi.ResultInvalid)
		return
	}
	ret(stack, abi.ResultOK)
}

func inputRead(ctx context.Context, mem engine.Memory, stack []uint64) {
	st, r := enter(ctx)
	if r != abi.ResultOK {
		ret(stack, r)
		return
	}
	buf, bufLen, nPtr := uint32(stack[0]), uint32(stack[1]), uint32(stack[2])
	n := min(uint64(bufLen), uint64(len(st.input)))
	if mem == nil {
		ret(stack, abi.ResultInvalid)
		return
	}
	if _, ok := mem.Read(nPtr, 4); !ok {
		ret(stack, abi.ResultInvalid)
		return
	}
	if _, ok := mem.Read(buf, bufLen); !ok {
		ret(stack, abi.ResultInvalid)
		return
	}
	mem.Write(buf, st.input[:n])
	mem.WriteUint32Le(nPtr, uint32(n))
	ret(stack, abi.ResultOK)
}

func outputWrite(ctx context.Context, mem engine.Memory, stack []uint64) {
	st, r := enter(ctx)
	if r != abi.ResultOK {
		ret(stack, r)
		return
	}
	if mem == nil {
		ret(stack, abi.ResultInvalid)
		return
	}
	data, ok := mem.Read(uint32(stack[0]), uint32(stack[1]))
	if !ok {
		ret(stack, abi.ResultInvalid)
		return
	}
	if _, err := st.output.Write(data); err != nil {
		ret(stack, abi.ResultLimit)
		return
	}
	ret(stack, abi.ResultOK)
}

func errorSet(ctx context.Context, mem engine.Memory, stack []uint64) {
	st, r := enter(ctx)
	if r != abi.ResultOK {
		ret(stack, r)
		return
	}
	code, class := abi.Code(uint32(stack[0])), abi.Class(uint32(stack[1]))
	if !code.Valid() || code >= 5000 || !class.Valid() || mem == nil {
		ret(stack, abi.ResultInvalid)
		return
	}
	msg, ok := mem.Read(uint32(stack[2]), uint32(stack[3]))
	if !ok {
		ret(stack, abi.ResultInvalid)
		return
	}
	st.guestErr = abi.NewError(code, class, guestString(msg))
	ret(stack, abi.ResultOK)
}

// guestString copies guest bytes into a string of valid UTF-8, cut at
// maxMessage bytes.
func guestString(b []byte) string {
	if len(b) > maxMessage {
		b = b[:maxMessage]
	}
	s := string(b)
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "\uFFFD")
	}
	return s
}

func deadline(ctx context.Context, mem engine.Memory, stack []uint64) {
	_, r := enter(ctx)
	if r != abi.ResultOK {
		ret(stack, r)
		return
	}
	left := int64(-1)
	if dl, ok := ctx.Deadline(); ok {
		left = max(int64(time.Until(dl)), 0)
	}
	if mem == nil || !mem.WriteUint64Le(uint32(stack[0]), uint64(left)) {
		ret(stack, abi.ResultInvalid)
		return
	}
	ret(stack, abi.ResultOK)
}

func check(ctx context.Context, _ engine.Memory, stack []uint64) {
	_, r := enter(ctx)
	ret(stack, r)
}
