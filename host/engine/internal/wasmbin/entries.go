package wasmbin

import "fmt"

// External kinds, as imports and exports encode them.
const (
	KindFunc   byte = 0x00
	KindTable  byte = 0x01
	KindMemory byte = 0x02
	KindGlobal byte = 0x03
	KindTag    byte = 0x04
)

// Import is one entry of the import section.
type Import struct {
	Module, Name string
	Kind         byte
	// TypeIndex is the function's (KindFunc) or the tag's (KindTag) type.
	TypeIndex uint32
	Table     Table      // KindTable
	Memory    Memory     // KindMemory
	Global    GlobalType // KindGlobal
}

// Import reads one import.
func (r *Reader) Import() Import {
	im := Import{Module: r.Name(), Name: r.Name(), Kind: r.Byte()}
	switch im.Kind {
	case KindFunc:
		im.TypeIndex = r.U32()
	case KindTable:
		im.Table = r.Table()
	case KindMemory:
		im.Memory = r.Memory()
	case KindGlobal:
		im.Global = r.GlobalType()
	case KindTag:
		r.Byte() // attribute
		im.TypeIndex = r.U32()
	default:
		r.pos--
		r.Fail(fmt.Sprintf("import kind 0x%x", im.Kind))
	}
	return im
}

// Export is one entry of the export section.
type Export struct {
	Name  string
	Kind  byte
	Index uint32
}

// Export reads one export.
func (r *Reader) Export() Export {
	return Export{Name: r.Name(), Kind: r.Byte(), Index: r.U32()}
}

// AppendExport appends an encoded export to b.
func AppendExport(b []byte, e Export) []byte {
	b = AppendName(b, e.Name)
	b = append(b, e.Kind)
	return AppendU32(b, e.Index)
}

// Global is one entry of the global section.
type Global struct {
	Type GlobalType
	// Init is the initialiser, a constant expression with its end.
	Init []byte
}

// Global reads one global.
func (r *Reader) Global() Global {
	return Global{Type: r.GlobalType(), Init: r.ConstExpr()}
}

// AppendGlobal appends an encoded global to b.
func AppendGlobal(b []byte, g Global) []byte {
	b = append(b, g.Type.Type...)
	if g.Type.Mutable {
		b = append(b, 0x01)
	} else {
		b = append(b, 0x00)
	}
	return append(b, g.Init...)
}

// Data is one entry of the data section.
type Data struct {
	// Passive segments are copied only by memory.init; active ones at
	// instantiation, into Memory at Offset.
	Passive bool
	Memory  uint32
	// Offset is a constant expression with its end; nil when passive.
	Offset []byte
	// Init is the segment's bytes; it aliases the input.
	Init []byte
}

// Data reads one data segment.
func (r *Reader) Data() Data {
	var d Data
	switch flags := r.U32(); flags {
	case 0:
		d.Offset = r.ConstExpr()
	case 1:
		d.Passive = true
	case 2:
		d.Memory = r.U32()
		d.Offset = r.ConstExpr()
	default:
		r.Fail(fmt.Sprintf("data segment flags %d", flags))
	}
	d.Init = r.Bytes(int(r.U32()))
	return d
}

// AppendData appends an encoded data segment to b, in its shortest form.
func AppendData(b []byte, d Data) []byte {
	switch {
	case d.Passive:
		b = append(b, 0x01)
	case d.Memory == 0:
		b = append(b, 0x00)
		b = append(b, d.Offset...)
	default:
		b = append(b, 0x02)
		b = AppendU32(b, d.Memory)
		b = append(b, d.Offset...)
	}
	b = AppendU32(b, uint32(len(d.Init)))
	return append(b, d.Init...)
}

// Constant-expression opcodes.
const (
	opEnd      = 0x0b
	opI32Const = 0x41
	opI64Const = 0x42
	opF32Const = 0x43
	opF64Const = 0x44
)

// ConstI32 returns the value of expr when it is exactly `i32.const v end`.
func ConstI32(expr []byte) (int32, bool) {
	if len(expr) < 3 || expr[0] != opI32Const {
		return 0, false
	}
	r := Reader{b: expr, pos: 1}
	v := r.S32()
	if r.Byte() != opEnd || !r.Done() || r.err != nil {
		return 0, false
	}
	return v, true
}

// ConstI64 returns the value of expr when it is exactly `i64.const v end`.
func ConstI64(expr []byte) (int64, bool) {
	if len(expr) < 3 || expr[0] != opI64Const {
		return 0, false
	}
	r := Reader{b: expr, pos: 1}
	v := r.S64()
	if r.Byte() != opEnd || !r.Done() || r.err != nil {
		return 0, false
	}
	return v, true
}

// I32Const returns the constant expression `i32.const v end`.
func I32Const(v int32) []byte { return append(AppendS32([]byte{opI32Const}, v), opEnd) }

// I64Const returns the constant expression `i64.const v end`.
func I64Const(v int64) []byte { return append(AppendS64([]byte{opI64Const}, v), opEnd) }

// F32Const returns the constant expression `f32.const end` of the float
// with the given IEEE 754 bits.
func F32Const(bits uint32) []byte {
	return []byte{opF32Const, byte(bits), byte(bits >> 8), byte(bits >> 16), byte(bits >> 24), opEnd}
}

// F64Const returns the constant expression `f64.const end` of the float
// with the given IEEE 754 bits.
func F64Const(bits uint64) []byte {
	b := []byte{opF64Const}
	for i := range 8 {
		b = append(b, byte(bits>>(8*i)))
	}
	return append(b, opEnd)
}

// ReadVec decodes the content of a vector section (imports, exports,
// globals, data and the like) with read, one entry at a time, and checks
// that nothing follows the last entry. For example:
//
//	globals, err := wasmbin.ReadVec(sec, (*wasmbin.Reader).Global)
func ReadVec[T any](s Section, read func(*Reader) T) ([]T, error) {
	r := s.Reader()
	n := r.Count()
	out := make([]T, 0, n)
	for range n {
		v := read(r)
		if r.err != nil {
			return nil, r.err
		}
		out = append(out, v)
	}
	if r.err == nil && !r.Done() {
		r.Fail("bytes after the last entry")
	}
	if r.err != nil {
		return nil, r.err
	}
	return out, nil
}
