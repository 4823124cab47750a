package wazero

import "errors"

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

// rewriteVersion names the rewrite below in every disk-cache key: wazero
// compiles the rewritten bytes, so code cached under another version of
// the rewrite is never loaded. Change it whenever the output changes.
const rewriteVersion = "entry-checks-1"

// emptyLoop is `loop (blocktype empty) end`.
var emptyLoop = [...]byte{0x03, 0x40, 0x0b}

const opLoop = 0x03

var errMalformed = errors.New("malformed module")

// addEntryChecks returns wasm with entry checks added, or wasm unchanged
// with an error when it cannot be parsed; the compiler then reports what is
// wrong with it.
func addEntryChecks(wasm []byte) ([]byte, error) {
	const headerLen = 8
	if len(wasm) < headerLen || string(wasm[:4]) != "\x00asm" {
		return wasm, errMalformed
	}
	pos := headerLen
	for pos < len(wasm) {
		id := wasm[pos]
		size, n, err := readU32(wasm[pos+1:])
		if err != nil {
			return wasm, err
		}
		start := pos + 1 + n
		end := start + int(size)
		if end > len(wasm) || end < start {
			return wasm, errMalformed
		}
		if id == 10 { // code section
			code, err := rewriteCode(wasm[start:end])
			if err != nil {
				return wasm, err
			}
			out := make([]byte, 0, len(wasm)+len(code)-int(size)+5)
			out = append(out, wasm[:pos+1]...)
			out = appendU32(out, uint32(len(code)))
			out = append(out, code...)
			out = append(out, wasm[end:]...)
			return out, nil
		}
		pos = end
	}
	return wasm, nil
}

func rewriteCode(sec []byte) ([]byte, error) {
	count, n, err := readU32(sec)
	if err != nil {
		return nil, err
	}
	// Every body takes at least one byte, so a count beyond the section's
	// length is a lie: never size anything from it.
	if uint64(count) > uint64(len(sec)) {
		return nil, errMalformed
	}
	out := make([]byte, 0, len(sec)+int(count)*(len(emptyLoop)+1))
	out = appendU32(out, count)
	pos := n
	for range count {
		size, n, err := readU32(sec[pos:])
		if err != nil {
			return nil, err
		}
		bodyStart := pos + n
		bodyEnd := bodyStart + int(size)
		if bodyEnd > len(sec) || bodyEnd < bodyStart {
			return nil, errMalformed
		}
		body := sec[bodyStart:bodyEnd]
		localsEnd, err := skipLocals(body)
		if err != nil {
			return nil, err
		}
		if reachesLoop(body[localsEnd:]) {
			out = appendU32(out, size)
			out = append(out, body...)
		} else {
			out = appendU32(out, size+uint32(len(emptyLoop)))
			out = append(out, body[:localsEnd]...)
			out = append(out, emptyLoop[:]...)
			out = append(out, body[localsEnd:]...)
		}
		pos = bodyEnd
	}
	if pos != len(sec) {
		return nil, errMalformed
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
	pos := 0
	for range maxPrefix {
		if pos >= len(code) {
			return false
		}
		op := code[pos]
		pos++
		switch op {
		case opLoop:
			return true
		case 0x01: // nop
		case 0x02: // block with an empty or single value type
			if pos >= len(code) {
				return false
			}
			switch bt := code[pos]; {
			case bt == 0x40, bt >= 0x7b && bt <= 0x7f, bt == 0x70, bt == 0x6f:
				pos++
			default:
				return false
			}
		case 0x20, 0x21, 0x22, 0x23, 0x24, 0x41, 0x42: // local.get/set/tee, global.get/set, i32/i64.const
			for { // one LEB128 immediate
				if pos >= len(code) {
					return false
				}
				b := code[pos]
				pos++
				if b&0x80 == 0 {
					break
				}
			}
		default:
			return false
		}
	}
	return false
}

// skipLocals returns the offset of the first instruction of a function
// body.
func skipLocals(body []byte) (int, error) {
	groups, pos, err := readU32(body)
	if err != nil {
		return 0, err
	}
	for range groups {
		_, n, err := readU32(body[pos:])
		if err != nil {
			return 0, err
		}
		pos += n
		if pos >= len(body) {
			return 0, errMalformed
		}
		t := body[pos]
		pos++
		if t == 0x63 || t == 0x64 { // (ref null? heaptype): a signed LEB follows
			for {
				if pos >= len(body) {
					return 0, errMalformed
				}
				b := body[pos]
				pos++
				if b&0x80 == 0 {
					break
				}
			}
		}
	}
	return pos, nil
}

func readU32(b []byte) (uint32, int, error) {
	var v uint32
	for i := 0; i < 5; i++ {
		if i >= len(b) {
			return 0, 0, errMalformed
		}
		c := b[i]
		v |= uint32(c&0x7f) << (7 * i)
		if c&0x80 == 0 {
			if i == 4 && c > 0x0f {
				return 0, 0, errMalformed
			}
			return v, i + 1, nil
		}
	}
	return 0, 0, errMalformed
}

func appendU32(b []byte, v uint32) []byte {
	for {
		c := byte(v & 0x7f)
		v >>= 7
		if v != 0 {
			b = append(b, c|0x80)
			continue
		}
		return append(b, c)
	}
}
