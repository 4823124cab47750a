//go:build cgo

package wasmtime

import (
	"encoding/binary"
	"fmt"
	"time"

	"github.com/bytecodealliance/wasmtime-go/v39"
)

// WASI preview1's poll_oneoff, as the engine serves it.
//
// wasmtime's own poll_oneoff sleeps its full time whatever the run's
// context: a 10 s clock subscription under a 500 ms timeout sleeps 10 s.
// The engine links its own poll_oneoff in front of WASI's. When every
// subscription is a clock — a sleep, which is what a Go, Rust, Zig, C or
// TinyGo program's sleep or idle scheduler asks for — it waits on a timer
// or the context, whichever is first, and ends the run with a trap if the
// context won. It answers exactly as the wazero engine's WASI does, so
// that a block sees the same on either engine: every clock subscription
// is reported as an event, the wait is the shortest timeout, and an
// absolute-time subscription is refused with ENOTSUP.
//
// Any other subscription (fd_read, fd_write) is handed to WASI's own
// poll_oneoff: the only descriptors a step has are its standard streams
// and preopened files, which are always ready, so that call does not
// block.

// Layout and values of the WASI preview1 structures poll_oneoff reads and
// writes.
const (
	subscriptionSize = 48
	eventSize        = 32

	eventTypeClock  = 0
	subclockAbstime = 1

	errnoSuccess = 0
	errnoFault   = 21
	errnoInval   = 28
	errnoNotSup  = 58

	trapInterrupted  = "blockhost: execution interrupted"
	pollOneoffParams = 4
)

func pollOneoffType() *wasmtime.FuncType {
	i32 := func() *wasmtime.ValType { return wasmtime.NewValType(wasmtime.KindI32) }
	params := make([]*wasmtime.ValType, pollOneoffParams)
	for i := range params {
		params[i] = i32()
	}
	return wasmtime.NewFuncType(params, []*wasmtime.ValType{i32()})
}

// pollOneoff is poll_oneoff(in, out, nsubscriptions, nevents_ptr) -> errno.
func (e *Engine) pollOneoff(c *wasmtime.Caller, args []wasmtime.Val) ([]wasmtime.Val, *wasmtime.Trap) {
	r, ok := c.Data().(*run)
	if !ok {
		return e.wasiPollOneoff(c, nil, args)
	}
	if r.ctx.Err() != nil {
		r.slept.Store(true)
		return nil, wasmtime.NewTrap(trapInterrupted)
	}
	in, out := uint32(args[0].I32()), uint32(args[1].I32())
	n, neventsPtr := uint32(args[2].I32()), uint32(args[3].I32())
	mem := r.memoryOf(c)
	if mem == nil || n == 0 || uint64(n)*subscriptionSize > 1<<32 {
		return e.wasiPollOneoff(c, r, args)
	}
	subs, ok := mem.Read(in, n*subscriptionSize)
	if !ok {
		return e.wasiPollOneoff(c, r, args)
	}
	for i := range n {
		if subs[i*subscriptionSize+8] != eventTypeClock {
			return e.wasiPollOneoff(c, r, args)
		}
	}
	events, ok := mem.Read(out, n*eventSize)
	if !ok || !mem.WriteUint32Le(neventsPtr, n) {
		return errno(errnoFault), nil
	}
	clear(events)
	wait := time.Duration(1<<63 - 1)
	for i := range n {
		s := subs[i*subscriptionSize:]
		switch flags := binary.LittleEndian.Uint16(s[40:]); flags {
		case 0:
		case subclockAbstime:
			return errno(errnoNotSup), nil
		default:
			return errno(errnoInval), nil
		}
		wait = min(wait, durationOf(binary.LittleEndian.Uint64(s[24:])))
		ev := events[i*eventSize:]
		copy(ev[0:8], s[0:8]) // userdata; error 0, type clock
	}
	if wait > 0 {
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-r.ctx.Done():
			t.Stop()
			r.slept.Store(true)
			return nil, wasmtime.NewTrap(trapInterrupted)
		}
	}
	return errno(errnoSuccess), nil
}

func durationOf(ns uint64) time.Duration {
	return time.Duration(min(ns, uint64(1<<63-1)))
}

func errno(n int32) []wasmtime.Val { return []wasmtime.Val{wasmtime.ValI32(n)} }

// wasiPollOneoff hands the call to WASI's own poll_oneoff. A guest whose
// memory the trampoline cannot import (shared or 64-bit) is answered
// ENOTSUP.
func (e *Engine) wasiPollOneoff(c *wasmtime.Caller, r *run, args []wasmtime.Val) ([]wasmtime.Val, *wasmtime.Trap) {
	res, trap := e.callWASI(c, r, "poll_oneoff", args[0].I32(), args[1].I32(), args[2].I32(), args[3].I32())
	if trap != nil {
		return nil, trap
	}
	return errno(res), nil
}

// WASI's own functions find the memory they read and write through the
// instance that calls them, so the engine cannot call them from Go
// directly. It calls them through a trampoline: a small module, one
// instance per run made on first use, that imports the guest's memory and
// re-exports it as "memory", and whose functions call WASI's.
const trampolineWAT = `(module
  (import "wasi_snapshot_preview1" "poll_oneoff" (func $poll (param i32 i32 i32 i32) (result i32)))
  (import "guest" "memory" (memory 0))
  (export "memory" (memory 0))
  (func (export "poll_oneoff") (param i32 i32 i32 i32) (result i32)
    (call $poll (local.get 0) (local.get 1) (local.get 2) (local.get 3))))`

func compileTrampoline(eng *wasmtime.Engine) (*wasmtime.Module, error) {
	wasm, err := wasmtime.Wat2Wasm(trampolineWAT)
	if err != nil {
		return nil, err
	}
	return wasmtime.NewModule(eng, wasm)
}

// callWASI calls WASI's own poll_oneoff (the function the trampoline
// exports) for the guest calling c.
func (e *Engine) callWASI(c *wasmtime.Caller, r *run, name string, args ...any) (int32, *wasmtime.Trap) {
	if r == nil {
		return errnoNotSup, nil
	}
	if r.trampoline == nil {
		ex := c.GetExport(memoryExport)
		if ex == nil || ex.Memory() == nil {
			return errnoNotSup, nil
		}
		var imports []wasmtime.AsExtern
		for _, fn := range []string{"poll_oneoff"} {
			f := e.wasiLinker.Get(c, wasiModule, fn)
			if f == nil {
				return 0, wasmtime.NewTrap("blockhost: WASI function " + fn + " is missing")
			}
			imports = append(imports, f)
		}
		inst, err := wasmtime.NewInstance(c, e.trampoline, append(imports, ex.Memory()))
		if err != nil {
			return errnoNotSup, nil
		}
		r.trampoline = inst
	}
	fn := r.trampoline.GetFunc(c, name)
	if fn == nil {
		return 0, wasmtime.NewTrap(fmt.Sprintf("blockhost: trampoline lacks %s", name))
	}
	v, err := fn.Call(c, args...)
	if err != nil {
		if t, ok := err.(*wasmtime.Trap); ok {
			return 0, t
		}
		return 0, wasmtime.NewTrap(err.Error())
	}
	res, _ := v.(int32)
	return res, nil
}
