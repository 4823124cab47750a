package wasmbin

import "fmt"

// Reader decodes the binary format from a byte slice. The first error
// sticks: later reads return zero values and Err reports it, so a caller
// may decode a whole entry and check once.
type Reader struct {
	b    []byte
	pos  int
	base int // offset of b in the module, for errors
	err  error
}

// NewReader returns a reader of b; errors give offsets in b.
func NewReader(b []byte) *Reader { return &Reader{b: b} }

// Err returns the first error met, or nil.
func (r *Reader) Err() error { return r.err }

// Pos returns the position of the next byte, counted from the start of
// the reader's bytes.
func (r *Reader) Pos() int { return r.pos }

// Done reports whether every byte was read or an error was met.
func (r *Reader) Done() bool { return r.err != nil || r.pos >= len(r.b) }

// Rest returns the bytes not yet read, without reading them.
func (r *Reader) Rest() []byte {
	if r.err != nil {
		return nil
	}
	return r.b[r.pos:]
}

// Fail records an error at the current position unless one is recorded
// already; decoders built on Reader use it for their own checks.
func (r *Reader) Fail(what string) {
	if r.err == nil {
		r.err = &Error{Offset: r.base + r.pos, What: what}
	}
}

// Byte reads one byte.
func (r *Reader) Byte() byte {
	if r.err != nil {
		return 0
	}
	if r.pos >= len(r.b) {
		r.Fail("unexpected end")
		return 0
	}
	b := r.b[r.pos]
	r.pos++
	return b
}

// Bytes reads n bytes; the result aliases the input.
func (r *Reader) Bytes(n int) []byte {
	if r.err != nil {
		return nil
	}
	if n < 0 || n > len(r.b)-r.pos {
		r.Fail("length out of range")
		return nil
	}
	b := r.b[r.pos : r.pos+n : r.pos+n]
	r.pos += n
	return b
}

// uleb reads an unsigned LEB128 of at most maxBytes bytes.
func (r *Reader) uleb(maxBytes int) uint64 {
	var v uint64
	for i := range maxBytes {
		b := r.Byte()
		if r.err != nil {
			return 0
		}
		v |= uint64(b&0x7f) << (7 * i)
		if b&0x80 == 0 {
			return v
		}
	}
	r.Fail("LEB128 too long")
	return 0
}

// sleb reads a signed LEB128 of at most maxBytes bytes. When it takes all
// maxBytes, the bits of the last byte past the integer's width must be its
// sign, as wazero requires (mask: those bits, below the last byte's own
// sign bit, as wazero checks them); otherwise it is an error.
func (r *Reader) sleb(maxBytes int, mask byte) int64 {
	var v int64
	for i := range maxBytes {
		b := r.Byte()
		if r.err != nil {
			return 0
		}
		v |= int64(b&0x7f) << (7 * i)
		if b&0x80 == 0 {
			if shift := 7 * (i + 1); shift < 64 && b&0x40 != 0 {
				v |= -1 << shift
			}
			if i == maxBytes-1 {
				negative := v < 0
				if maxBytes == 5 {
					negative = int32(v) < 0
				}
				if (negative && b&mask != mask) || (!negative && b&mask != 0) {
					r.pos--
					r.Fail("signed integer too large")
					return 0
				}
			}
			return v
		}
	}
	r.Fail("LEB128 too long")
	return 0
}

// U32 reads an unsigned LEB128 of at most 32 bits (u32).
func (r *Reader) U32() uint32 {
	v := r.uleb(5)
	if v > 1<<32-1 {
		r.Fail("u32 out of range")
		return 0
	}
	return uint32(v)
}

// U64 reads an unsigned LEB128 of at most ten bytes (u64).
func (r *Reader) U64() uint64 { return r.uleb(10) }

// S32 reads a signed LEB128 of at most five bytes (s32).
func (r *Reader) S32() int32 { return int32(r.sleb(5, 0x30)) }

// S64 reads a signed LEB128 of at most ten bytes (s64).
func (r *Reader) S64() int64 { return r.sleb(10, 0x3e) }

// Count reads the length of a vector whose every element takes at least
// one byte, so that a corrupt length cannot make a loop run longer, or a
// buffer grow larger, than the input.
func (r *Reader) Count() uint32 {
	n := r.U32()
	if int64(n) > int64(len(r.b)-r.pos) {
		r.Fail("vector length past the end")
		return 0
	}
	return n
}

// Name reads a name: a length and that many bytes.
func (r *Reader) Name() string { return string(r.Bytes(int(r.U32()))) }

// ValType is a value type as encoded: one byte for the number, vector and
// abstract reference types, more for a reference with a heap type.
type ValType string

// The one-byte value types.
const (
	I32       ValType = "\x7f"
	I64       ValType = "\x7e"
	F32       ValType = "\x7d"
	F64       ValType = "\x7c"
	V128      ValType = "\x7b"
	FuncRef   ValType = "\x70"
	ExternRef ValType = "\x6f"
)

// ValType reads a value type.
func (r *Reader) ValType() ValType {
	start := r.pos
	switch r.Byte() {
	case 0x63, 0x64: // (ref null ht), (ref ht)
		r.HeapType()
	}
	if r.err != nil {
		return ""
	}
	return ValType(r.b[start:r.pos])
}

// HeapType reads an s33 heap type: an abstract type in one byte, or a type
// index.
func (r *Reader) HeapType() {
	if r.err == nil && r.pos < len(r.b) && r.b[r.pos]&0xc0 == 0x40 {
		r.pos++
		return
	}
	r.uleb(5)
}

// BlockType reads a block type, an s33: negative for the empty type or a
// value type, else a type index. It reports whether the type is a
// reference naming a heap type, -29 or -28 (0x63 or 0x64 in one byte, but
// in any encoding as wazero reads it), after which a heap type follows.
func (r *Reader) BlockType() (ref bool) {
	start := r.pos
	raw := r.uleb(5)
	if r.err != nil {
		return false
	}
	bits := min(7*(r.pos-start), 33)
	raw &= 1<<bits - 1
	v := int64(raw)
	if raw&(1<<(bits-1)) != 0 {
		v -= 1 << bits
	}
	if v == -29 || v == -28 {
		r.HeapType()
		return true
	}
	return false
}

// Limits are the limits of a memory or table type.
type Limits struct {
	// Flags is the encoded flags byte: 0x01 a maximum follows, 0x02
	// shared, 0x04 64-bit addresses, 0x08 (memories) a page size follows.
	Flags    byte
	Min, Max uint64
}

// HasMax reports whether the limits have a maximum.
func (l Limits) HasMax() bool { return l.Flags&0x01 != 0 }

// Is64 reports whether addresses are 64-bit.
func (l Limits) Is64() bool { return l.Flags&0x04 != 0 }

// Limits reads limits.
func (r *Reader) Limits() Limits {
	l := Limits{Flags: r.Byte()}
	l.Min = r.U64()
	if l.HasMax() {
		l.Max = r.U64()
	}
	return l
}

// Memory is a memory type.
type Memory struct {
	Limits
	// PageLog2 is the base-2 logarithm of the page size: 16 unless the
	// custom-page-sizes proposal says otherwise.
	PageLog2 uint32
}

// Memory reads a memory type.
func (r *Reader) Memory() Memory {
	m := Memory{Limits: r.Limits(), PageLog2: 16}
	if m.Flags&0x08 != 0 {
		m.PageLog2 = r.U32()
		if m.PageLog2 > 16 {
			r.Fail("page size")
		}
	}
	return m
}

// Table is a table type.
type Table struct {
	Elem ValType
	Limits
}

// Table reads a table type.
func (r *Reader) Table() Table {
	t := Table{Elem: r.ValType()}
	t.Limits = r.Limits()
	return t
}

// GlobalType is the type of a global.
type GlobalType struct {
	Type    ValType
	Mutable bool
}

// GlobalType reads a global type.
func (r *Reader) GlobalType() GlobalType {
	g := GlobalType{Type: r.ValType()}
	switch r.Byte() {
	case 0x00:
	case 0x01:
		g.Mutable = true
	default:
		r.Fail("global mutability")
	}
	return g
}

// MemArg reads the immediate of a load or store: alignment, a memory
// index when the alignment's bit 6 says so, and an offset.
func (r *Reader) MemArg() {
	align := r.U32()
	if align&0x40 != 0 {
		r.U32() // memory index
	}
	r.U64() // offset
}

// Locals reads the local declarations at the start of a function body and
// returns how many locals they declare, saturating.
func (r *Reader) Locals() uint64 {
	var total uint64
	for range r.Count() {
		n := r.U32()
		r.ValType()
		total = min(total+uint64(n), 1<<63)
	}
	return total
}

// ConstExpr reads a constant expression and returns it, its final end
// included; the result aliases the input. Any instruction is accepted up
// to the first end: telling a constant one from another is the engine's
// job.
func (r *Reader) ConstExpr() []byte {
	start := r.pos
	for r.err == nil {
		if r.pos < len(r.b) && r.b[r.pos] == 0x0b {
			r.pos++
			return r.b[start:r.pos:r.pos]
		}
		r.SkipInstr()
	}
	return nil
}

// SkipInstr reads one instruction and its immediates, whatever it is. An
// opcode it does not know is an error.
func (r *Reader) SkipInstr() error {
	op := r.Byte()
	switch {
	case r.err != nil:
	case op <= 0x01, op == 0x05, op == 0x0a, op == 0x0b, op == 0x0f,
		op == 0x19, op == 0x1a, op == 0x1b, op == 0xd1, op == 0xd3, op == 0xd4,
		op >= 0x45 && op <= 0xc4:
		// No immediate.
	case op >= 0x02 && op <= 0x04, op == 0x06: // block, loop, if, try
		r.BlockType()
	case op == 0x07, op == 0x08, op == 0x09, op == 0x0c, op == 0x0d, op == 0x10,
		op == 0x12, op == 0x14, op == 0x15, op == 0x18, op == 0xd2, op == 0xd5, op == 0xd6,
		op >= 0x20 && op <= 0x26, op == 0x3f, op == 0x40:
		r.U32()
	case op == 0x0e: // br_table
		for range r.Count() {
			r.U32()
		}
		r.U32()
	case op == 0x11, op == 0x13: // call_indirect, return_call_indirect
		r.U32()
		r.U32()
	case op == 0x1c: // select t*
		for range r.Count() {
			r.ValType()
		}
	case op == 0x1f: // try_table
		r.BlockType()
		for range r.Count() {
			switch r.Byte() {
			case 0x00, 0x01: // catch, catch_ref: tag, label
				r.U32()
				r.U32()
			case 0x02, 0x03: // catch_all, catch_all_ref: label
				r.U32()
			default:
				r.Fail("catch clause")
			}
		}
	case op >= 0x28 && op <= 0x3e:
		r.MemArg()
	case op == 0x41:
		r.S32()
	case op == 0x42:
		r.S64()
	case op == 0x43:
		r.Bytes(4)
	case op == 0x44:
		r.Bytes(8)
	case op == 0xd0: // ref.null
		r.HeapType()
	case op == 0xfb:
		r.skipGC()
	case op == 0xfc:
		r.skipMisc()
	case op == 0xfd:
		r.skipSIMD()
	case op == 0xfe:
		r.skipAtomic()
	default:
		r.pos--
		r.Fail(fmt.Sprintf("opcode 0x%x", op))
	}
	return r.err
}

func (r *Reader) skipGC() {
	switch sub := r.U32(); {
	case r.err != nil:
	case sub <= 1, sub >= 6 && sub <= 7, sub >= 11 && sub <= 14, sub == 16:
		r.U32()
	case sub >= 2 && sub <= 5, sub >= 8 && sub <= 10, sub == 17, sub == 18, sub == 19:
		r.U32()
		r.U32()
	case sub == 15, sub >= 26 && sub <= 30:
	case sub >= 20 && sub <= 23:
		r.HeapType()
	case sub == 24 || sub == 25: // br_on_cast(_fail)
		r.Byte()
		r.U32()
		r.HeapType()
		r.HeapType()
	default:
		r.Fail(fmt.Sprintf("GC opcode 0xfb %d", sub))
	}
}

func (r *Reader) skipMisc() {
	switch sub := r.U32(); {
	case r.err != nil:
	case sub <= 7, sub >= 19 && sub <= 22:
	case sub == 8, sub == 10, sub == 12, sub == 14:
		r.U32()
		r.U32()
	case sub == 9, sub == 11, sub == 13, sub >= 15 && sub <= 17:
		r.U32()
	default:
		r.Fail(fmt.Sprintf("opcode 0xfc %d", sub))
	}
}

func (r *Reader) skipSIMD() {
	switch sub := r.U32(); {
	case r.err != nil:
	case sub <= 11, sub == 92, sub == 93:
		r.MemArg()
	case sub == 12, sub == 13: // v128.const, i8x16.shuffle
		r.Bytes(16)
	case sub >= 21 && sub <= 34: // extract_lane, replace_lane
		r.Byte()
	case sub >= 84 && sub <= 91: // load_lane, store_lane
		r.MemArg()
		r.Byte()
	case sub <= 0x113:
	default:
		r.Fail(fmt.Sprintf("SIMD opcode %d", sub))
	}
}

func (r *Reader) skipAtomic() {
	switch sub := r.U32(); {
	case r.err != nil:
	case sub == 0x03: // atomic.fence
		r.Byte()
	case sub <= 0x02, sub >= 0x10 && sub <= 0x4e:
		r.MemArg()
	default:
		r.Fail(fmt.Sprintf("atomic opcode 0x%x", sub))
	}
}
