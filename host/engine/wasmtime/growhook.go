package wasmtime

import (
	"errors"
	"fmt"
	"slices"
)

// wasmtime enforces the memory limit through its store limiter, which
// makes an over-limit memory.grow return -1 but does not tell the embedder
// that it did. The step contract needs to know: a guest that then traps or
// exits must be reported as quota_exceeded, not as a trap. hookGrow
// therefore rewrites a module so that every memory.grow that fails records
// the size it asked for, in bytes, in a new exported global; after the run
// the engine compares the largest refused request with the limit. A
// failure for another reason (the memory's own declared maximum) asks for
// no more than the limit allows, or is reported like the wazero engine
// reports it, as the limit being hit only when the request is over the
// limit.
//
// The rewrite appends globals and exports and replaces each memory.grow
// in the code section with a sequence of the same effect:
//
//	global.set $delta  global.get $delta  memory.grow M
//	global.set $result global.get $result  <-1>  eq
//	if  ($delta + memory.size M) << log2(page size)  -> $request
//	    if $request > $refused  then $refused = $request  end
//	end
//	global.get $result
//
// Scratch values live in globals rather than locals, so function types and
// local indices are untouched; the sequence contains no call, so no other
// code can run between a store and the load that follows it. Memories the
// module does not export get an export too, so that the engine can read
// their size: it is the run's peak (memory never shrinks).
//
// The rewrite decodes every instruction, because 0x40 (memory.grow) also
// appears inside other instructions' immediates. An opcode it does not know
// makes it give up: the module is compiled as it is, still capped by the
// store limiter, and an over-limit growth is then reported as whatever the
// guest did about it.

// hookExportPrefix starts the names of the exports hookGrow adds; the
// engine hides them from Module.Exports.
const hookExportPrefix = "blockhost:"

// refusedExport names the global holding the largest refused request.
const refusedExport = hookExportPrefix + "grow_refused"

// wasiMemoryExport is the export WASI implementations read memory through.
const wasiMemoryExport = "memory"

func memoryExportName(i int) string { return fmt.Sprintf("%smemory%d", hookExportPrefix, i) }

var errMalformed = errors.New("wasmtime: cannot decode module")

// memInfo is one memory of a module, imported or defined, in index order.
type memInfo struct {
	min      uint64 // pages
	pageLog2 uint32
	is64     bool
	// export is a name the memory is exported under, after the rewrite.
	export string
}

// minBytes is the memory's initial size in bytes, saturating.
func (m memInfo) minBytes() uint64 {
	if m.min > (1<<64-1)>>m.pageLog2 {
		return 1<<64 - 1
	}
	return m.min << m.pageLog2
}

// growInfo is what the engine needs to know about a rewritten module.
type growInfo struct {
	memories []memInfo
	// hooked is true when memory.grow failures are recorded in the global
	// exported as refusedExport.
	hooked bool
	// addedMemory is true when the rewrite gave a module without memory an
	// empty one, and exportedMemory when it exported memory 0 as "memory":
	// wasmtime's WASI finds the memory it works on through that export,
	// even for proc_exit, where wazero's uses the module's memory whatever
	// its export. The engine hides both.
	addedMemory, exportedMemory bool
}

type section struct {
	id      byte
	content []byte
}

// sectionRank orders the known sections as the binary format requires.
var sectionRank = map[byte]int{1: 1, 2: 2, 3: 3, 4: 4, 5: 5, 13: 6, 6: 7, 7: 8, 8: 9, 9: 10, 12: 11, 10: 12, 11: 13}

func splitSections(wasm []byte) ([]section, error) {
	if len(wasm) < 8 || string(wasm[:4]) != "\x00asm" {
		return nil, errMalformed
	}
	var out []section
	r := reader{b: wasm, pos: 8}
	for !r.done() {
		id := r.byte()
		size := r.u32()
		content := r.bytes(int(size))
		if r.err != nil {
			return nil, r.err
		}
		out = append(out, section{id, content})
	}
	return out, nil
}

// hookGrow returns the rewritten module and what the engine needs to know
// about it. On error, wasm should be compiled as it is. With rewrite false
// it only reads the module, for a module whose rewritten form was compiled
// earlier (the disk cache): the information is then that of the rewritten
// module, except hooked, which the caller learns from the compiled
// module's exports.
func hookGrow(wasm []byte, rewrite bool) ([]byte, growInfo, error) {
	secs, err := splitSections(wasm)
	if err != nil {
		return nil, growInfo{}, err
	}
	var info growInfo
	var importedGlobals, definedGlobals uint32
	exportNames := map[string]bool{}
	globalIdx, exportIdx, codeIdx := -1, -1, -1
	for i, s := range secs {
		r := reader{b: s.content}
		switch s.id {
		case 2: // import
			for range r.count() {
				r.name()
				r.name()
				switch kind := r.byte(); kind {
				case 0x00: // function
					r.u32()
				case 0x01: // table
					r.refType()
					r.limits()
				case 0x02: // memory
					info.memories = append(info.memories, r.memType())
				case 0x03: // global
					r.valType()
					r.byte()
					importedGlobals++
				case 0x04: // tag
					r.byte()
					r.u32()
				default:
					return nil, growInfo{}, fmt.Errorf("%w: import kind 0x%x", errMalformed, kind)
				}
			}
		case 5: // memory
			for range r.count() {
				info.memories = append(info.memories, r.memType())
			}
		case 6:
			globalIdx = i
			definedGlobals = r.u32()
		case 7:
			exportIdx = i
			for range r.count() {
				name := r.name()
				kind := r.byte()
				idx := r.u32()
				exportNames[name] = true
				if kind == 0x02 && int(idx) < len(info.memories) && info.memories[idx].export == "" && r.err == nil {
					info.memories[idx].export = name
				}
			}
		case 10:
			codeIdx = i
		}
		if r.err != nil {
			return nil, growInfo{}, r.err
		}
	}
	for name := range exportNames {
		if len(name) >= len(hookExportPrefix) && name[:len(hookExportPrefix)] == hookExportPrefix {
			return nil, growInfo{}, fmt.Errorf("%w: export %q uses the engine's reserved prefix", errMalformed, name)
		}
	}

	var newExports []byte
	var nNewExports uint32
	addExport := func(name string, kind byte, idx uint32) {
		newExports = appendName(newExports, name)
		newExports = append(newExports, kind)
		newExports = appendU32(newExports, idx)
		nNewExports++
	}
	if !exportNames[wasiMemoryExport] {
		if len(info.memories) == 0 {
			info.memories = append(info.memories, memInfo{pageLog2: 16})
			info.addedMemory = true
		}
		info.exportedMemory = true
		if info.memories[0].export == "" {
			info.memories[0].export = wasiMemoryExport
		}
		addExport(wasiMemoryExport, 0x02, 0)
	}
	for i := range info.memories {
		if info.memories[i].export == "" {
			info.memories[i].export = memoryExportName(i)
			addExport(info.memories[i].export, 0x02, uint32(i))
		}
	}

	// The code section, hooked, and the globals it needs.
	g := hookGlobals{base: importedGlobals + definedGlobals}
	if !rewrite {
		return nil, info, nil
	}
	if info.addedMemory {
		// (memory 0 0): the module has no memory instruction, so it can
		// neither see nor grow it.
		secs = withVecEntries(secs, -1, 5, 0, 1, []byte{0x01, 0x00, 0x00})
	}
	index := func(id byte) int { return slices.IndexFunc(secs, func(s section) bool { return s.id == id }) }
	globalIdx, exportIdx = index(6), index(7)
	codeIdx = index(10)
	if codeIdx >= 0 && !info.addedMemory {
		code, hooked, err := hookCode(secs[codeIdx].content, info.memories, g)
		if err != nil {
			return nil, growInfo{}, err
		}
		if hooked {
			secs[codeIdx].content = code
			info.hooked = true
		}
	}
	if info.hooked {
		addExport(refusedExport, 0x03, g.refused())
		entries := []byte{}
		for _, t := range hookGlobalTypes {
			entries = append(entries, t, 0x01) // mutable
			if t == typeI32 {
				entries = append(entries, 0x41, 0x00, 0x0b) // i32.const 0 end
			} else {
				entries = append(entries, 0x42, 0x00, 0x0b) // i64.const 0 end
			}
		}
		secs = withVecEntries(secs, globalIdx, 6, definedGlobals, uint32(len(hookGlobalTypes)), entries)
		exportIdx = index(7)
	}
	if nNewExports > 0 {
		var existing uint32
		if exportIdx >= 0 {
			r := reader{b: secs[exportIdx].content}
			existing = r.u32()
		}
		secs = withVecEntries(secs, exportIdx, 7, existing, nNewExports, newExports)
	}

	out := make([]byte, 0, len(wasm)+len(newExports)+64)
	out = append(out, wasm[:8]...)
	for _, s := range secs {
		out = append(out, s.id)
		out = appendU32(out, uint32(len(s.content)))
		out = append(out, s.content...)
	}
	return out, info, nil
}

// withVecEntries appends n encoded entries to the vector section at idx
// (holding count entries), or inserts a new section of that id in its
// place in the order when idx is -1.
func withVecEntries(secs []section, idx int, id byte, count, n uint32, entries []byte) []section {
	if idx >= 0 {
		r := reader{b: secs[idx].content}
		r.u32()
		content := appendU32(nil, count+n)
		content = append(content, secs[idx].content[r.pos:]...)
		secs[idx].content = append(content, entries...)
		return secs
	}
	content := append(appendU32(nil, n), entries...)
	at := len(secs)
	for i, s := range secs {
		if rank, ok := sectionRank[s.id]; ok && rank > sectionRank[id] {
			at = i
			break
		}
	}
	return slices.Insert(secs, at, section{id, content})
}

// The globals hookGrow adds, in order, after the module's own.
const (
	typeI32 = 0x7f
	typeI64 = 0x7e
)

var hookGlobalTypes = []byte{typeI64, typeI32, typeI32, typeI64, typeI64, typeI64}

type hookGlobals struct{ base uint32 }

func (g hookGlobals) refused() uint32 { return g.base }     // i64: largest refused request, bytes
func (g hookGlobals) delta32() uint32 { return g.base + 1 } // i32
func (g hookGlobals) res32() uint32   { return g.base + 2 } // i32
func (g hookGlobals) delta64() uint32 { return g.base + 3 } // i64
func (g hookGlobals) res64() uint32   { return g.base + 4 } // i64
func (g hookGlobals) request() uint32 { return g.base + 5 } // i64: the failed request, bytes

// growSequence is what replaces memory.grow on memory mem.
func growSequence(out []byte, mem uint32, m memInfo, g hookGlobals) []byte {
	op := func(code byte, idx uint32) { out = appendU32(append(out, code), idx) }
	const (
		globalGet  = 0x23
		globalSet  = 0x24
		memSize    = 0x3f
		memGrow    = 0x40
		opIf       = 0x04
		blockEmpty = 0x40
		opEnd      = 0x0b
	)
	if m.is64 {
		op(globalSet, g.delta64())
		op(globalGet, g.delta64())
		op(memGrow, mem)
		op(globalSet, g.res64())
		op(globalGet, g.res64())
		out = append(out, 0x42, 0x7f, 0x51, opIf, blockEmpty) // i64.const -1, i64.eq, if
		// A request of 2^47 pages or more is over any limit: record the
		// largest value rather than compute a sum that could wrap.
		op(globalGet, g.delta64())
		out = append(out, 0x42)
		out = appendS64(out, 1<<47)
		out = append(out, 0x5a, opIf, typeI64) // i64.ge_u, if (result i64)
		out = append(out, 0x42, 0x7f)          // i64.const -1
		out = append(out, 0x05)                // else
		op(memSize, mem)
		op(globalGet, g.delta64())
		out = append(out, 0x7c, 0x42) // i64.add, i64.const
		out = appendS64(out, int64(m.pageLog2))
		out = append(out, 0x86, opEnd) // i64.shl, end
	} else {
		op(globalSet, g.delta32())
		op(globalGet, g.delta32())
		op(memGrow, mem)
		op(globalSet, g.res32())
		op(globalGet, g.res32())
		out = append(out, 0x41, 0x7f, 0x46, opIf, blockEmpty) // i32.const -1, i32.eq, if
		op(memSize, mem)
		out = append(out, 0xad) // i64.extend_i32_u
		op(globalGet, g.delta32())
		out = append(out, 0xad, 0x7c, 0x42) // i64.extend_i32_u, i64.add, i64.const
		out = appendS64(out, int64(m.pageLog2))
		out = append(out, 0x86) // i64.shl
	}
	op(globalSet, g.request())
	op(globalGet, g.request())
	op(globalGet, g.refused())
	out = append(out, 0x56, opIf, blockEmpty) // i64.gt_u, if
	op(globalGet, g.request())
	op(globalSet, g.refused())
	out = append(out, opEnd, opEnd) // end (gt), end (failed)
	if m.is64 {
		op(globalGet, g.res64())
	} else {
		op(globalGet, g.res32())
	}
	return out
}

// hookCode rewrites the code section; hooked is false when no function
// grows memory (the section is then returned as it was).
func hookCode(sec []byte, mems []memInfo, g hookGlobals) (code []byte, hooked bool, err error) {
	r := reader{b: sec}
	count := r.count()
	out := appendU32(make([]byte, 0, len(sec)+len(sec)/64), count)
	var body []byte
	for range count {
		size := r.u32()
		fn := r.bytes(int(size))
		if r.err != nil {
			return nil, false, r.err
		}
		var grew bool
		body, grew, err = hookBody(body[:0], fn, mems, g)
		if err != nil {
			return nil, false, err
		}
		if grew {
			hooked = true
			out = appendU32(out, uint32(len(body)))
			out = append(out, body...)
		} else {
			out = appendU32(out, size)
			out = append(out, fn...)
		}
	}
	if !r.done() {
		return nil, false, fmt.Errorf("%w: trailing bytes in the code section", errMalformed)
	}
	if !hooked {
		return sec, false, nil
	}
	return out, true, nil
}

// hookBody copies one function body to out with its memory.grow
// instructions replaced, and reports whether there were any.
func hookBody(out, fn []byte, mems []memInfo, g hookGlobals) ([]byte, bool, error) {
	r := reader{b: fn}
	for range r.count() { // local declarations
		r.u32()
		r.valType()
	}
	if r.err != nil {
		return nil, false, r.err
	}
	out = append(out, fn[:r.pos]...)
	grew := false
	copied := r.pos
	for !r.done() {
		start := r.pos
		if fn[start] == 0x40 { // memory.grow
			r.pos++
			mem := r.u32()
			if r.err != nil {
				return nil, false, r.err
			}
			if int(mem) >= len(mems) {
				return nil, false, fmt.Errorf("%w: memory.grow of memory %d", errMalformed, mem)
			}
			out = append(out, fn[copied:start]...)
			out = growSequence(out, mem, mems[mem], g)
			copied = r.pos
			grew = true
			continue
		}
		if err := r.skipInstr(); err != nil {
			return nil, false, err
		}
	}
	out = append(out, fn[copied:]...)
	return out, grew, nil
}

// reader decodes the WebAssembly binary format. The first error sticks;
// later reads return zero values.
type reader struct {
	b   []byte
	pos int
	err error
}

func (r *reader) done() bool { return r.err != nil || r.pos >= len(r.b) }

func (r *reader) fail(what string) {
	if r.err == nil {
		r.err = fmt.Errorf("%w: %s at offset %d", errMalformed, what, r.pos)
	}
}

func (r *reader) byte() byte {
	if r.err != nil {
		return 0
	}
	if r.pos >= len(r.b) {
		r.fail("unexpected end")
		return 0
	}
	b := r.b[r.pos]
	r.pos++
	return b
}

func (r *reader) bytes(n int) []byte {
	if r.err != nil {
		return nil
	}
	if n < 0 || n > len(r.b)-r.pos {
		r.fail("length out of range")
		return nil
	}
	b := r.b[r.pos : r.pos+n]
	r.pos += n
	return b
}

// leb reads an unsigned LEB128 of at most maxBytes bytes.
func (r *reader) leb(maxBytes int) uint64 {
	var v uint64
	for i := 0; i < maxBytes; i++ {
		b := r.byte()
		if r.err != nil {
			return 0
		}
		v |= uint64(b&0x7f) << (7 * i)
		if b&0x80 == 0 {
			return v
		}
	}
	r.fail("LEB128 too long")
	return 0
}

func (r *reader) u32() uint32 {
	v := r.leb(5)
	if v > 1<<32-1 {
		r.fail("u32 out of range")
	}
	return uint32(v)
}

func (r *reader) u64() uint64 { return r.leb(10) }

// count reads the length of a vector whose every element takes at least
// one byte, so that a corrupt length cannot make a loop run longer than
// the input.
func (r *reader) count() uint32 {
	n := r.u32()
	if int64(n) > int64(len(r.b)-r.pos) {
		r.fail("vector length past the end")
		return 0
	}
	return n
}

func (r *reader) name() string { return string(r.bytes(int(r.u32()))) }

// heapType reads an s33 heap type: an abstract type in one byte, or a type
// index.
func (r *reader) heapType() {
	if r.pos < len(r.b) && r.b[r.pos]&0xc0 == 0x40 {
		r.pos++
		return
	}
	r.leb(5)
}

// valType reads a value type: a one-byte type, or a reference type with a
// heap type.
func (r *reader) valType() {
	switch r.byte() {
	case 0x63, 0x64: // (ref null ht), (ref ht)
		r.heapType()
	}
}

func (r *reader) refType() { r.valType() }

// blockType reads a block type: empty, a value type or a type index.
func (r *reader) blockType() {
	if r.pos >= len(r.b) {
		r.fail("unexpected end")
		return
	}
	switch b := r.b[r.pos]; {
	case b == 0x63 || b == 0x64:
		r.valType()
	case b&0xc0 == 0x40: // empty (0x40) or a one-byte value type
		r.pos++
	default:
		r.leb(5) // type index, a non-negative s33
	}
}

func (r *reader) limits() (flags byte, min uint64) {
	flags = r.byte()
	min = r.u64()
	if flags&0x01 != 0 {
		r.u64()
	}
	return flags, min
}

func (r *reader) memType() memInfo {
	flags, min := r.limits()
	m := memInfo{min: min, pageLog2: 16, is64: flags&0x04 != 0}
	if flags&0x08 != 0 {
		m.pageLog2 = r.u32()
		if m.pageLog2 > 16 {
			r.fail("page size")
		}
	}
	return m
}

func (r *reader) memArg() {
	align := r.u32()
	if align&0x40 != 0 {
		r.u32() // memory index
	}
	r.u64() // offset
}

// skipInstr skips one instruction other than memory.grow.
func (r *reader) skipInstr() error {
	op := r.byte()
	switch {
	case op <= 0x01, op == 0x05, op == 0x0a, op == 0x0b, op == 0x0f,
		op == 0x19, op == 0x1a, op == 0x1b, op == 0xd1, op == 0xd3, op == 0xd4,
		op >= 0x45 && op <= 0xc4:
		// No immediate.
	case op >= 0x02 && op <= 0x04, op == 0x06: // block, loop, if, try
		r.blockType()
	case op == 0x07, op == 0x08, op == 0x09, op == 0x0c, op == 0x0d, op == 0x10,
		op == 0x12, op == 0x14, op == 0x15, op == 0x18, op == 0xd2, op == 0xd5, op == 0xd6,
		op >= 0x20 && op <= 0x26, op == 0x3f:
		r.u32()
	case op == 0x0e: // br_table
		for range r.count() {
			r.u32()
		}
		r.u32()
	case op == 0x11, op == 0x13: // call_indirect, return_call_indirect
		r.u32()
		r.u32()
	case op == 0x1c: // select t*
		for range r.count() {
			r.valType()
		}
	case op == 0x1f: // try_table
		r.blockType()
		for range r.count() {
			switch r.byte() {
			case 0x00, 0x01: // catch, catch_ref: tag, label
				r.u32()
				r.u32()
			case 0x02, 0x03: // catch_all, catch_all_ref: label
				r.u32()
			default:
				r.fail("catch clause")
			}
		}
	case op >= 0x28 && op <= 0x3e:
		r.memArg()
	case op == 0x41:
		r.leb(5)
	case op == 0x42:
		r.leb(10)
	case op == 0x43:
		r.bytes(4)
	case op == 0x44:
		r.bytes(8)
	case op == 0xd0: // ref.null
		r.heapType()
	case op == 0xfb:
		r.skipGC()
	case op == 0xfc:
		r.skipMisc()
	case op == 0xfd:
		r.skipSIMD()
	case op == 0xfe:
		r.skipAtomic()
	default:
		r.fail(fmt.Sprintf("opcode 0x%x", op))
	}
	return r.err
}

func (r *reader) skipGC() {
	switch sub := r.u32(); {
	case sub <= 1, sub >= 6 && sub <= 7, sub >= 11 && sub <= 14, sub == 16:
		r.u32()
	case sub >= 2 && sub <= 5, sub >= 8 && sub <= 10, sub == 17, sub == 18, sub == 19:
		r.u32()
		r.u32()
	case sub == 15, sub >= 26 && sub <= 30:
	case sub >= 20 && sub <= 23:
		r.heapType()
	case sub == 24 || sub == 25: // br_on_cast(_fail)
		r.byte()
		r.u32()
		r.heapType()
		r.heapType()
	default:
		r.fail(fmt.Sprintf("GC opcode 0xfb %d", sub))
	}
}

func (r *reader) skipMisc() {
	switch sub := r.u32(); {
	case sub <= 7, sub >= 19 && sub <= 22:
	case sub == 8, sub == 10, sub == 12, sub == 14:
		r.u32()
		r.u32()
	case sub == 9, sub == 11, sub == 13, sub >= 15 && sub <= 17:
		r.u32()
	default:
		r.fail(fmt.Sprintf("opcode 0xfc %d", sub))
	}
}

func (r *reader) skipSIMD() {
	switch sub := r.u32(); {
	case sub <= 11, sub == 92, sub == 93:
		r.memArg()
	case sub == 12, sub == 13: // v128.const, i8x16.shuffle
		r.bytes(16)
	case sub >= 21 && sub <= 34: // extract_lane, replace_lane
		r.byte()
	case sub >= 84 && sub <= 91: // load_lane, store_lane
		r.memArg()
		r.byte()
	case sub <= 0x113:
	default:
		r.fail(fmt.Sprintf("SIMD opcode %d", sub))
	}
}

func (r *reader) skipAtomic() {
	switch sub := r.u32(); {
	case sub == 0x03: // atomic.fence
		r.byte()
	case sub <= 0x02, sub >= 0x10 && sub <= 0x4e:
		r.memArg()
	default:
		r.fail(fmt.Sprintf("atomic opcode 0x%x", sub))
	}
}

func appendU32(b []byte, v uint32) []byte {
	for {
		c := byte(v & 0x7f)
		v >>= 7
		if v == 0 {
			return append(b, c)
		}
		b = append(b, c|0x80)
	}
}

func appendS64(b []byte, v int64) []byte {
	for {
		c := byte(v & 0x7f)
		v >>= 7
		if (v == 0 && c&0x40 == 0) || (v == -1 && c&0x40 != 0) {
			return append(b, c)
		}
		b = append(b, c|0x80)
	}
}

func appendName(b []byte, s string) []byte {
	return append(appendU32(b, uint32(len(s))), s...)
}
