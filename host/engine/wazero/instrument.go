package wazero

import "github.com/blockhost/blockhost/host/engine/internal/wasmbin"

// wazero's close-on-context-done mode checks for interruption only at loop
// headers. A guest that recurses without looping (naive Fibonacci, say)
// would never see the check and could run past its deadline. addEntryChecks
// rewrites a module so that every function body that does not reach a loop
// header straight away (reachesLoop) starts with an empty loop, `loop end`,
// which is enough for wazero to place its check at every function entry. Semantics are
// unchanged: an empty loop with an empty block type is a no-op.
//
// The rewrite touches only the code section. Offsets in DWARF custom
// sections, if any, shift by three bytes per instrumented function; that
// affects only source positions in stack traces.

// rewriteVersion names the rewrites of a module before it is compiled (the
// one below, mergeData's, exportStart's and datamerge.SplitImage's) in every disk-cache key: wazero compiles the
// rewritten bytes, so code cached under another version of the rewrites is
// never loaded. Change it whenever their output changes.
const rewriteVersion = "entry-checks-1; data-merge-1; start-export-1; data-image-1"

// emptyLoop is `loop (blocktype empty) end`.
var emptyLoop = [...]byte{0x03, 0x40, 0x0b}

const opLoop = 0x03

var errMalformed = wasmbin.ErrMalformed

// addEntryChecks returns wasm with entry checks added, or wasm unchanged
// with an error when it cannot be parsed; the compiler then reports what is
// wrong with it.
func addEntryChecks(wasm []byte) ([]byte, error) {
	m, err := wasmbin.Parse(wasm)
	if err != nil {
		return wasm, err
	}
	i := m.Index(wasmbin.SectionCode)
	if i < 0 {
		return wasm, nil
	}
	code, err := rewriteCode(m.Sections[i])
	if err != nil {
		return wasm, err
	}
	return wasmbin.Replace(wasm, m.Sections[i], code), nil
}

func rewriteCode(sec wasmbin.Section) ([]byte, error) {
	r := sec.Reader()
	// Every body takes at least one byte, so Count refuses a count beyond
	// the section's length: nothing is sized from a lie.
	count := r.Count()
	if err := r.Err(); err != nil {
		return nil, err
	}
	out := make([]byte, 0, len(sec.Content)+int(count)*(len(emptyLoop)+1))
	out = wasmbin.AppendU32(out, count)
	for range count {
		size := r.U32()
		body := r.Bytes(int(size))
		if err := r.Err(); err != nil {
			return nil, err
		}
		br := wasmbin.NewReader(body)
		br.Locals()
		if err := br.Err(); err != nil {
			return nil, err
		}
		localsEnd := br.Pos()
		if reachesLoop(body[localsEnd:]) {
			out = wasmbin.AppendU32(out, size)
			out = append(out, body...)
		} else {
			out = wasmbin.AppendU32(out, size+uint32(len(emptyLoop)))
			out = append(out, body[:localsEnd]...)
			out = append(out, emptyLoop[:]...)
			out = append(out, body[localsEnd:]...)
		}
	}
	if !r.Done() {
		r.Fail("bytes after the last function body")
		return nil, r.Err()
	}
	return out, nil
}

// reachesLoop reports whether every execution of code reaches a loop
// header before it can call, branch, return or trap: the code is a loop, or
// begins with a short run of instructions that do none of those (local and
// global accesses, constants, nop, block) followed by a loop. wazero checks
// for interruption at that header, so the function needs no added check.
// The Go compiler starts every function this way (global.get, local.set,
// block, loop), so Go-built modules are left as they are.
func reachesLoop(code []byte) bool {
	const maxPrefix = 16
	r := wasmbin.NewReader(code)
	for range maxPrefix {
		if r.Done() {
			return false
		}
		switch op := code[r.Pos()]; op {
		case opLoop:
			return true
		case 0x02: // block with an empty or single value type
			rest := r.Rest()
			if len(rest) < 2 {
				return false
			}
			switch bt := rest[1]; {
			case bt == 0x40, bt >= 0x7b && bt <= 0x7f, bt == 0x70, bt == 0x6f:
			default:
				return false
			}
		case 0x01, // nop
			0x20, 0x21, 0x22, 0x23, 0x24, // local.get/set/tee, global.get/set
			0x41, 0x42: // i32/i64.const
		default:
			return false
		}
		r.SkipInstr()
	}
	return false
}
