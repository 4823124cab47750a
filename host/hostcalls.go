package host

import (
	"context"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/blockhost/blockhost/abi"
	"github.com/blockhost/blockhost/host/auditlog"
	"github.com/blockhost/blockhost/host/capability"
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

	// caps are the states of the registered capabilities, in the order of
	// capabilities (capabilities.go), from open to close; capsBuf spares
	// a step the allocation.
	caps    []capability.State
	capsBuf [4]capability.State
	// cfg is the run's configuration while open runs, for AddDirs.
	cfg *engine.RunConfig
	// audit is the runtime's audit log, or nil (auditlog.go).
	audit *auditlog.Log
}

// hostFunctions are the functions of the blockhost import module: the core
// ones here, then each registered capability's.
var hostFunctions = func() []engine.HostFunction {
	fns := []engine.HostFunction{
		hostFunc(abi.FuncInputLen, inputLen),
		hostFunc(abi.FuncInputRead, inputRead),
		hostFunc(abi.FuncOutputWrite, outputWrite),
		hostFunc(abi.FuncErrorSet, errorSet),
		hostFunc(abi.FuncLog, logCall),
		hostFunc(abi.FuncDeadline, deadline),
		hostFunc(abi.FuncCheck, check),
	}
	for i, c := range capabilities {
		for _, f := range c.Functions() {
			fns = append(fns, capabilityFunc(i, f))
		}
	}
	return fns
}()

// hostFunc makes a blockhost function of f, with its ABI signature. Every
// call enters first (enter): counted, and answered timeout or cancelled
// without calling f once the step is over. Every blockhost function stops
// when done (docs/abi.md §4): entered after the step is over, or returning
// after it ended, it ends the run instead of returning to the guest, so no
// guest code runs after its step is over.
func hostFunc(name string, f func(ctx context.Context, st *stepState, mem engine.Memory, stack []uint64) abi.Result) engine.HostFunction {
	sig, ok := abi.LookupFunction(name)
	if !ok {
		panic("host: host function " + name + " is not in abi.Functions")
	}
	return engine.HostFunction{Name: name, Signature: sig, StopWhenDone: true,
		Func: func(ctx context.Context, mem engine.Memory, stack []uint64) {
			st, r := enter(ctx)
			if r == abi.ResultOK {
				r = f(ctx, st, mem, stack)
			}
			stack[0] = uint64(r)
		}}
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

func inputLen(_ context.Context, st *stepState, mem engine.Memory, stack []uint64) abi.Result {
	if mem == nil || !mem.WriteUint32Le(uint32(stack[0]), uint32(len(st.input))) {
		return abi.ResultInvalid
	}
	return abi.ResultOK
}

func inputRead(_ context.Context, st *stepState, mem engine.Memory, stack []uint64) abi.Result {
	buf, bufLen, nPtr := uint32(stack[0]), uint32(stack[1]), uint32(stack[2])
	n := min(uint64(bufLen), uint64(len(st.input)))
	if mem == nil {
		return abi.ResultInvalid
	}
	if _, ok := mem.Read(nPtr, 4); !ok {
		return abi.ResultInvalid
	}
	if _, ok := mem.Read(buf, bufLen); !ok {
		return abi.ResultInvalid
	}
	mem.Write(buf, st.input[:n])
	mem.WriteUint32Le(nPtr, uint32(n))
	return abi.ResultOK
}

func outputWrite(_ context.Context, st *stepState, mem engine.Memory, stack []uint64) abi.Result {
	if mem == nil {
		return abi.ResultInvalid
	}
	data, ok := mem.Read(uint32(stack[0]), uint32(stack[1]))
	if !ok {
		return abi.ResultInvalid
	}
	if _, err := st.output.Write(data); err != nil {
		return abi.ResultLimit
	}
	return abi.ResultOK
}

func errorSet(_ context.Context, st *stepState, mem engine.Memory, stack []uint64) abi.Result {
	code, class := abi.Code(uint32(stack[0])), abi.Class(uint32(stack[1]))
	if !code.Valid() || code >= 5000 || !class.Valid() || mem == nil {
		return abi.ResultInvalid
	}
	msg, ok := mem.Read(uint32(stack[2]), uint32(stack[3]))
	if !ok {
		return abi.ResultInvalid
	}
	st.guestErr = abi.NewError(code, class, guestString(msg))
	return abi.ResultOK
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

func deadline(ctx context.Context, _ *stepState, mem engine.Memory, stack []uint64) abi.Result {
	left := int64(-1)
	if dl, ok := ctx.Deadline(); ok {
		left = max(int64(time.Until(dl)), 0)
	}
	if mem == nil || !mem.WriteUint64Le(uint32(stack[0]), uint64(left)) {
		return abi.ResultInvalid
	}
	return abi.ResultOK
}

// check returns ok: hostFunc's enter has answered timeout or cancelled
// already if the step is over.
func check(context.Context, *stepState, engine.Memory, []uint64) abi.Result {
	return abi.ResultOK
}
