package wasmbin

import (
	"bytes"
	"errors"
	"math"
	"path/filepath"
	"testing"

	"github.com/blockhost/blockhost/internal/testwasm"
)

func sample(t testing.TB) []byte {
	return testwasm.WAT(t, filepath.Join("testdata", "sample.wat"))
}

func TestLEB_roundTrip(t *testing.T) {
	for _, v := range []uint64{0, 1, 0x7f, 0x80, 0x3fff, 0x4000, math.MaxUint32, math.MaxUint32 + 1, math.MaxUint64} {
		r := NewReader(AppendU64(nil, v))
		if got := r.U64(); got != v || r.Err() != nil || !r.Done() {
			t.Errorf("U64 of %d: %d, %v", v, got, r.Err())
		}
		if v <= math.MaxUint32 {
			r := NewReader(AppendU32(nil, uint32(v)))
			if got := r.U32(); uint64(got) != v || r.Err() != nil || !r.Done() {
				t.Errorf("U32 of %d: %d, %v", v, got, r.Err())
			}
		}
	}
	// Five- and ten-byte encodings whose last byte is the sign, as wazero
	// takes them: -1 and MaxInt32 in five bytes, -1 in ten.
	for in, want := range map[string]int64{"\xff\xff\xff\xff\x7f": -1, "\xff\xff\xff\xff\x07": math.MaxInt32} {
		if got := NewReader([]byte(in)).S32(); int64(got) != want {
			t.Errorf("S32 of % x: %d, want %d", in, got, want)
		}
	}
	if got := NewReader([]byte("\xff\xff\xff\xff\xff\xff\xff\xff\xff\x7f")).S64(); got != -1 {
		t.Errorf("S64 of ten bytes of -1: %d", got)
	}
	for _, v := range []int64{0, 1, -1, 63, 64, -64, -65, math.MaxInt32, math.MinInt32, math.MaxInt64, math.MinInt64} {
		r := NewReader(AppendS64(nil, v))
		if got := r.S64(); got != v || r.Err() != nil || !r.Done() {
			t.Errorf("S64 of %d: %d, %v", v, got, r.Err())
		}
		if v >= math.MinInt32 && v <= math.MaxInt32 {
			r := NewReader(AppendS32(nil, int32(v)))
			if got := r.S32(); int64(got) != v || r.Err() != nil || !r.Done() {
				t.Errorf("S32 of %d: %d, %v", v, got, r.Err())
			}
		}
	}
}

func TestReader_malformed(t *testing.T) {
	tests := []struct {
		name string
		in   string
		read func(*Reader)
	}{
		{"u32 of six bytes", "\x80\x80\x80\x80\x80\x00", func(r *Reader) { r.U32() }},
		{"u32 over 32 bits", "\xff\xff\xff\xff\x1f", func(r *Reader) { r.U32() }},
		{"u32 cut short", "\x80", func(r *Reader) { r.U32() }},
		// wazero refuses a last byte whose bits past the width are not
		// the sign: 5 + 2^32, and 2^31 written with bit 32 clear.
		{"s32 over 32 bits", "\x85\x80\x80\x80\x10", func(r *Reader) { r.S32() }},
		{"s32 sign bits disagree", "\xff\xff\xff\xff\x0f", func(r *Reader) { r.S32() }},
		{"s64 over 64 bits", "\x80\x80\x80\x80\x80\x80\x80\x80\x80\x02", func(r *Reader) { r.S64() }},
		{"s64 sign bits disagree", "\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01", func(r *Reader) { r.S64() }},
		{"u64 of eleven bytes", "\x80\x80\x80\x80\x80\x80\x80\x80\x80\x80\x00", func(r *Reader) { r.U64() }},
		{"count past the end", "\x03\x00\x00", func(r *Reader) { r.Count() }},
		{"name past the end", "\x05abc", func(r *Reader) { r.Name() }},
		{"byte at the end", "", func(r *Reader) { r.Byte() }},
		{"unknown opcode", "\xff", func(r *Reader) { r.SkipInstr() }},
		{"const expr without end", "\x41\x01", func(r *Reader) { r.ConstExpr() }},
		{"data flags", "\x03\x00", func(r *Reader) { r.Data() }},
		{"global mutability", "\x7f\x02\x41\x00\x0b", func(r *Reader) { r.Global() }},
		{"import kind", "\x00\x00\x09", func(r *Reader) { r.Import() }},
		{"page size", "\x08\x00\x11", func(r *Reader) { r.Memory() }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := NewReader([]byte(tc.in))
			tc.read(r)
			var e *Error
			if !errors.Is(r.Err(), ErrMalformed) || !errors.As(r.Err(), &e) {
				t.Fatalf("error %v, want an *Error matching ErrMalformed", r.Err())
			}
			if e.Offset < 0 || e.Offset > len(tc.in) {
				t.Errorf("offset %d outside the %d bytes read", e.Offset, len(tc.in))
			}
			// The error sticks: later reads return zero values.
			if r.Byte() != 0 || r.U32() != 0 || r.Rest() != nil || !r.Done() {
				t.Error("a read after the error returned something")
			}
		})
	}
}

func TestParse_encodeRoundTrip(t *testing.T) {
	wasm := sample(t)
	m, err := Parse(wasm)
	if err != nil {
		t.Fatal(err)
	}
	if got := m.Encode(); !bytes.Equal(got, wasm) {
		t.Fatalf("Encode gave %d bytes, want the %d parsed", len(got), len(wasm))
	}
	if m.Size() != len(wasm) {
		t.Errorf("Size %d, want %d", m.Size(), len(wasm))
	}
	var ids []byte
	for _, s := range m.Sections {
		ids = append(ids, s.ID)
		if !bytes.Equal(wasm[s.Offset:s.Offset+len(s.Content)], s.Content) || wasm[s.Start] != s.ID {
			t.Errorf("section %d: Start or Offset wrong", s.ID)
		}
	}
	want := []byte{SectionType, SectionImport, SectionFunction, SectionGlobal, SectionExport,
		SectionDataCount, SectionCode, SectionData}
	if !bytes.Equal(ids, want) {
		t.Errorf("sections % x, want % x", ids, want)
	}
}

func TestParse_malformed(t *testing.T) {
	for name, in := range map[string]string{
		"empty":            "",
		"short":            "\x00asm\x01",
		"wrong magic":      "\x00asn\x01\x00\x00\x00",
		"size cut short":   Header + "\x01\x80",
		"section too long": Header + "\x01\x05\x00",
		"size over 32 bit": Header + "\x01\xff\xff\xff\xff\x7f",
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := Parse([]byte(in)); !errors.Is(err, ErrMalformed) {
				t.Errorf("error %v, want ErrMalformed", err)
			}
		})
	}
}

func TestReadVec_entries(t *testing.T) {
	m, err := Parse(sample(t))
	if err != nil {
		t.Fatal(err)
	}
	sec := func(id byte) Section { return m.Sections[m.Index(id)] }

	imports, err := ReadVec(sec(SectionImport), (*Reader).Import)
	if err != nil {
		t.Fatal(err)
	}
	if len(imports) != 4 {
		t.Fatalf("%d imports, want 4", len(imports))
	}
	if im := imports[0]; im.Module != "env" || im.Name != "f" || im.Kind != KindFunc {
		t.Errorf("import 0 = %+v", im)
	}
	if mem := imports[1].Memory; imports[1].Kind != KindMemory || mem.Min != 1 || !mem.HasMax() || mem.Max != 2 || mem.PageLog2 != 16 || mem.Is64() {
		t.Errorf("import 1 = %+v", imports[1])
	}
	if g := imports[2].Global; imports[2].Kind != KindGlobal || g.Type != I32 || g.Mutable {
		t.Errorf("import 2 = %+v", imports[2])
	}
	if tb := imports[3].Table; imports[3].Kind != KindTable || tb.Elem != FuncRef || tb.Min != 1 || tb.HasMax() {
		t.Errorf("import 3 = %+v", imports[3])
	}

	globals, err := ReadVec(sec(SectionGlobal), (*Reader).Global)
	if err != nil {
		t.Fatal(err)
	}
	if len(globals) != 2 {
		t.Fatalf("%d globals, want 2", len(globals))
	}
	if v, ok := ConstI64(globals[0].Init); globals[0].Type != (GlobalType{I64, true}) || !ok || v != -5 {
		t.Errorf("global 0 = %+v (init %d, %v)", globals[0], v, ok)
	}
	if v, ok := ConstI32(globals[1].Init); globals[1].Type != (GlobalType{I32, false}) || !ok || v != 70000 {
		t.Errorf("global 1 = %+v (init %d, %v)", globals[1], v, ok)
	}

	exports, err := ReadVec(sec(SectionExport), (*Reader).Export)
	if err != nil {
		t.Fatal(err)
	}
	wantExports := []Export{{"run", KindFunc, 1}, {"counter", KindGlobal, 1}, {"mem", KindMemory, 0}}
	if len(exports) != len(wantExports) {
		t.Fatalf("exports %+v, want %+v", exports, wantExports)
	}
	for i := range exports {
		if exports[i] != wantExports[i] {
			t.Errorf("export %d = %+v, want %+v", i, exports[i], wantExports[i])
		}
	}

	data, err := ReadVec(sec(SectionData), (*Reader).Data)
	if err != nil {
		t.Fatal(err)
	}
	if len(data) != 3 {
		t.Fatalf("%d data segments, want 3", len(data))
	}
	if v, ok := ConstI32(data[0].Offset); data[0].Passive || !ok || v != 16 || string(data[0].Init) != "hello" {
		t.Errorf("data 0 = %+v", data[0])
	}
	if v, ok := ConstI32(data[1].Offset); !ok || v != 1024 || len(data[1].Init) != 0 {
		t.Errorf("data 1 = %+v", data[1])
	}
	if !data[2].Passive || data[2].Offset != nil || string(data[2].Init) != "passive bytes" {
		t.Errorf("data 2 = %+v", data[2])
	}

	// Every function body decodes, instruction by instruction, to its end.
	code := sec(SectionCode).Reader()
	for range code.Count() {
		body := NewReader(code.Bytes(int(code.U32())))
		if n := body.Locals(); n != 3 {
			t.Errorf("%d locals, want 3", n)
		}
		for !body.Done() {
			body.SkipInstr()
		}
		if body.Err() != nil {
			t.Fatal(body.Err())
		}
	}
	if code.Err() != nil || !code.Done() {
		t.Fatalf("code section: %v", code.Err())
	}
}

func TestReadVec_trailingBytes(t *testing.T) {
	content := AppendExport(AppendU32(nil, 1), Export{"x", KindFunc, 0})
	if _, err := ReadVec(Section{Content: content}, (*Reader).Export); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadVec(Section{Content: append(content, 0)}, (*Reader).Export); !errors.Is(err, ErrMalformed) {
		t.Errorf("error %v, want ErrMalformed", err)
	}
}

func TestAppend_entriesRoundTrip(t *testing.T) {
	data := []Data{
		{Offset: I32Const(-1), Init: []byte("abc")},
		{Memory: 3, Offset: I64Const(1 << 40), Init: []byte{}},
		{Passive: true, Init: []byte("p")},
	}
	globals := []Global{
		{GlobalType{F32, true}, F32Const(math.Float32bits(1.5))},
		{GlobalType{F64, false}, F64Const(math.Float64bits(-2.25))},
	}
	var b []byte
	for _, d := range data {
		b = AppendData(b, d)
	}
	for _, g := range globals {
		b = AppendGlobal(b, g)
	}
	r := NewReader(b)
	for i, want := range data {
		got := r.Data()
		if got.Passive != want.Passive || got.Memory != want.Memory || !bytes.Equal(got.Offset, want.Offset) || !bytes.Equal(got.Init, want.Init) {
			t.Errorf("data %d = %+v, want %+v", i, got, want)
		}
	}
	for i, want := range globals {
		if got := r.Global(); got.Type != want.Type || !bytes.Equal(got.Init, want.Init) {
			t.Errorf("global %d = %+v, want %+v", i, got, want)
		}
	}
	if r.Err() != nil || !r.Done() {
		t.Fatalf("%v, done %v", r.Err(), r.Done())
	}
	if _, ok := ConstI32(I64Const(1)); ok {
		t.Error("ConstI32 took an i64.const")
	}
	if _, ok := ConstI32(append(I32Const(1), 0x0b)); ok {
		t.Error("ConstI32 took an expression with bytes after its end")
	}
}

func TestModule_insertAndAppend(t *testing.T) {
	m := &Module{Header: []byte(Header), Sections: []Section{
		{ID: SectionType, Content: []byte{0}},
		{ID: SectionCustom, Content: []byte("\x01x")},
		{ID: SectionCode, Content: []byte{0}},
	}}
	if at := m.Insert(Section{ID: SectionGlobal, Content: []byte{0}}); at != 2 {
		t.Errorf("global section inserted at %d, want 2 (after the custom section, before code)", at)
	}
	if at := m.Insert(Section{ID: SectionData, Content: []byte{0}}); at != 4 {
		t.Errorf("data section inserted at %d, want 4 (last)", at)
	}
	if at := m.Insert(Section{ID: SectionData, Content: []byte{0}}); at != 5 {
		t.Errorf("second data section inserted at %d, want 5 (after the first)", at)
	}
	m.Sections = m.Sections[:5]
	exp := AppendExport(nil, Export{"e", KindGlobal, 0})
	if err := m.AppendEntries(SectionExport, 1, exp); err != nil {
		t.Fatal(err)
	}
	if err := m.AppendEntries(SectionExport, 1, exp); err != nil {
		t.Fatal(err)
	}
	i := m.Index(SectionExport)
	if i != 3 {
		t.Fatalf("export section at %d, want 3", i)
	}
	exports, err := ReadVec(m.Sections[i], (*Reader).Export)
	if err != nil || len(exports) != 2 {
		t.Fatalf("exports %+v, %v; want two", exports, err)
	}
	again, err := Parse(m.Encode())
	if err != nil || len(again.Sections) != 6 {
		t.Fatalf("re-parsed: %v, %d sections", err, len(again.Sections))
	}
}

func TestReplace_keepsOtherBytes(t *testing.T) {
	// A custom section whose size is padded to five bytes, as linkers do.
	wasm := []byte(Header + "\x00\x82\x80\x80\x80\x00\x01x" + "\x01\x01\x00")
	m, err := Parse(wasm)
	if err != nil {
		t.Fatal(err)
	}
	out := Replace(wasm, m.Sections[1], []byte{0x01, 0x60, 0x00, 0x00})
	want := Header + "\x00\x82\x80\x80\x80\x00\x01x" + "\x01\x04\x01\x60\x00\x00"
	if string(out) != want {
		t.Errorf("Replace = % x, want % x", out, want)
	}
}

func FuzzParse(f *testing.F) {
	f.Add(sample(f))
	f.Add([]byte(Header + "\x0a\x05\xff\xff\xff\xff\x0f"))
	f.Fuzz(func(t *testing.T, wasm []byte) {
		in := bytes.Clone(wasm)
		m, err := Parse(wasm)
		if !bytes.Equal(in, wasm) {
			t.Fatal("Parse modified its input")
		}
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v does not match ErrMalformed", err)
			}
			return
		}
		again, err := Parse(m.Encode())
		if err != nil || len(again.Sections) != len(m.Sections) {
			t.Fatalf("re-parsing the encoded module: %v", err)
		}
		for i, s := range m.Sections {
			if again.Sections[i].ID != s.ID || !bytes.Equal(again.Sections[i].Content, s.Content) {
				t.Fatalf("section %d changed in a round trip", i)
			}
			// No decoder panics or runs away, whatever the content.
			switch s.ID {
			case SectionImport:
				ReadVec(s, (*Reader).Import)
			case SectionExport:
				ReadVec(s, (*Reader).Export)
			case SectionGlobal:
				ReadVec(s, (*Reader).Global)
			case SectionData:
				ReadVec(s, (*Reader).Data)
			case SectionMemory:
				ReadVec(s, (*Reader).Memory)
			case SectionCode:
				r := s.Reader()
				for range r.Count() {
					body := NewReader(r.Bytes(int(r.U32())))
					body.Locals()
					for !body.Done() {
						body.SkipInstr()
					}
				}
			}
		}
	})
}

// TestReader_blockType: a block type is an s33, as wazero decodes it
// whatever its length; -29 and -28 (0x63, 0x64) are followed by a heap
// type, in every encoding.
func TestReader_blockType(t *testing.T) {
	for _, c := range []struct {
		in    string
		n     int
		isRef bool
	}{
		{"\x40", 1, false},
		{"\x7f", 1, false},
		{"\xc0\x7f", 2, false}, // -64, empty, in two bytes
		{"\x05", 1, false},
		{"\x85\x00", 2, false},
		{"\x63\x00", 2, true},
		{"\x64\x70", 2, true},
		{"\xe3\x7f\x0c", 3, true},
		{"\xe4\xff\xff\xff\x7f\x0c", 6, true},
	} {
		r := NewReader([]byte(c.in + "\x0b"))
		if ref := r.BlockType(); ref != c.isRef || r.Pos() != c.n || r.Err() != nil {
			t.Errorf("BlockType of % x: ref %v, %d bytes, %v; want ref %v, %d bytes", c.in, ref, r.Pos(), r.Err(), c.isRef, c.n)
		}
	}
}
