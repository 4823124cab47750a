// Package wasmbin decodes and encodes the WebAssembly binary format, as
// far as blockhost's load-time checks and rewrites need it: the module
// preamble, sections, LEB128 numbers, the entries of the import, export,
// global and data sections, constant expressions, and the instructions of
// function bodies (to skip them, one at a time).
//
// Guarantees:
//   - Decoding never panics, whatever the input, and never allocates in
//     proportion to a count the input declares: a vector whose every
//     element takes at least one byte cannot be longer than the bytes left
//     (Reader.Count), so a lying count fails before anything is sized from
//     it.
//   - Every error matches ErrMalformed and, as an *Error, names the offset.
//   - Nothing here modifies its input; decoded slices alias it.
//   - Encoding a decoded module (Parse, then Module.Encode) gives back the
//     same bytes.
//
// It is not a validator: a module it decodes may still be refused by an
// engine, and the rewrites built on it leave such a module to the engine
// to report.
package wasmbin

// Header is the preamble of a version-1 module: the magic number and the
// version.
const Header = "\x00asm\x01\x00\x00\x00"

// HeaderLen is the length of the preamble.
const HeaderLen = 8

// Section ids.
const (
	SectionCustom    byte = 0
	SectionType      byte = 1
	SectionImport    byte = 2
	SectionFunction  byte = 3
	SectionTable     byte = 4
	SectionMemory    byte = 5
	SectionGlobal    byte = 6
	SectionExport    byte = 7
	SectionStart     byte = 8
	SectionElement   byte = 9
	SectionCode      byte = 10
	SectionData      byte = 11
	SectionDataCount byte = 12
	SectionTag       byte = 13
)

// sectionRank orders the known sections as the binary format requires;
// custom sections (rank 0) may go anywhere.
var sectionRank = [...]int{
	SectionType: 1, SectionImport: 2, SectionFunction: 3, SectionTable: 4,
	SectionMemory: 5, SectionTag: 6, SectionGlobal: 7, SectionExport: 8,
	SectionStart: 9, SectionElement: 10, SectionDataCount: 11, SectionCode: 12,
	SectionData: 13,
}

func rank(id byte) int {
	if int(id) < len(sectionRank) {
		return sectionRank[id]
	}
	return 0
}

// Section is one section of a module.
type Section struct {
	ID byte
	// Content is the section's bytes after its id and size.
	Content []byte
	// Start is where the section (its id byte) starts, and Offset where
	// its content starts, in the module it was parsed from; errors of
	// Reader count from Offset. Neither plays a part in encoding.
	Start, Offset int
}

// Reader returns a reader of the section's content whose errors give
// offsets in the module.
func (s Section) Reader() *Reader { return &Reader{b: s.Content, base: s.Offset} }

// Module is a module split into its sections, in order.
type Module struct {
	// Header is the 8-byte preamble, kept as it was.
	Header   []byte
	Sections []Section
}

// Parse splits wasm into its sections. It checks the magic number, not
// the version, and no section's content.
func Parse(wasm []byte) (*Module, error) {
	if len(wasm) < HeaderLen || string(wasm[:4]) != Header[:4] {
		return nil, &Error{Offset: 0, What: "no WebAssembly header"}
	}
	m := &Module{Header: wasm[:HeaderLen]}
	err := EachSection(wasm, func(s Section) error {
		m.Sections = append(m.Sections, s)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return m, nil
}

// EachSection calls fn for each section of wasm, in order, without
// copying or collecting them; it stops at the first error, fn's or its
// own. It does not check the header: it starts after it.
func EachSection(wasm []byte, fn func(Section) error) error {
	if len(wasm) < HeaderLen {
		return &Error{Offset: 0, What: "module shorter than its 8-byte header"}
	}
	r := Reader{b: wasm, pos: HeaderLen}
	for !r.Done() {
		at := r.pos
		id := r.Byte()
		size := r.U32()
		start := r.pos
		content := r.Bytes(int(size))
		if r.err != nil {
			return r.err
		}
		if err := fn(Section{ID: id, Content: content, Start: at, Offset: start}); err != nil {
			return err
		}
	}
	return nil
}

// Index returns the position of the first section with the given id, or
// -1.
func (m *Module) Index(id byte) int {
	for i, s := range m.Sections {
		if s.ID == id {
			return i
		}
	}
	return -1
}

// Insert puts s where the binary format's order puts a section of its id
// (before the first known section that must follow it) and returns its
// position. A custom section goes at the end.
func (m *Module) Insert(s Section) int {
	at := len(m.Sections)
	if r := rank(s.ID); r > 0 {
		for i, t := range m.Sections {
			if rt := rank(t.ID); rt > r {
				at = i
				break
			}
		}
	}
	m.Sections = append(m.Sections, Section{})
	copy(m.Sections[at+1:], m.Sections[at:])
	m.Sections[at] = s
	return at
}

// AppendEntries adds n encoded entries at the end of the vector held by
// the first section with the given id, or inserts a section holding just
// them when there is none (Insert). The section's content is replaced,
// not modified in place.
func (m *Module) AppendEntries(id byte, n uint32, entries []byte) error {
	i := m.Index(id)
	if i < 0 {
		m.Insert(Section{ID: id, Content: append(AppendU32(nil, n), entries...)})
		return nil
	}
	r := m.Sections[i].Reader()
	count := r.U32()
	if r.err != nil {
		return r.err
	}
	content := AppendU32(make([]byte, 0, len(m.Sections[i].Content)+len(entries)+5), count+n)
	content = append(content, r.Rest()...)
	m.Sections[i].Content = append(content, entries...)
	return nil
}

// Size is the length of the encoded module.
func (m *Module) Size() int {
	n := len(m.Header)
	for _, s := range m.Sections {
		n += 1 + uleb128Len(uint64(len(s.Content))) + len(s.Content)
	}
	return n
}

// Encode returns the module's bytes.
func (m *Module) Encode() []byte {
	out := make([]byte, 0, m.Size())
	out = append(out, m.Header...)
	for _, s := range m.Sections {
		out = AppendSection(out, s.ID, s.Content)
	}
	return out
}

// Replace returns a copy of wasm with the content of s, a section parsed
// from wasm, replaced; every other byte is kept as it was (a section size
// encoded in more bytes than needed, as linkers do, stays so).
func Replace(wasm []byte, s Section, content []byte) []byte {
	end := s.Offset + len(s.Content)
	out := make([]byte, 0, len(wasm)-len(s.Content)+len(content)+5)
	out = append(out, wasm[:s.Start]...)
	out = AppendSection(out, s.ID, content)
	return append(out, wasm[end:]...)
}

// AppendSection appends a section with the given id and content to b.
func AppendSection(b []byte, id byte, content []byte) []byte {
	b = append(b, id)
	b = AppendU32(b, uint32(len(content)))
	return append(b, content...)
}

// Memories returns the memories the module defines, in order, and whether
// it imports one too.
func (m *Module) Memories() (own []Memory, imported bool, err error) {
	for _, s := range m.Sections {
		switch s.ID {
		case SectionImport:
			imports, err := ReadVec(s, (*Reader).Import)
			if err != nil {
				return nil, false, err
			}
			for _, im := range imports {
				imported = imported || im.Kind == KindMemory
			}
		case SectionMemory:
			if own, err = ReadVec(s, (*Reader).Memory); err != nil {
				return nil, false, err
			}
		}
	}
	return own, imported, nil
}
