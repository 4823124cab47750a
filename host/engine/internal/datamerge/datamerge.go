// Package datamerge rewrites a module's data section so that active
// segments lying close together in memory become one, the gaps between
// them filled with zeros. Both engines use it at load: wazero evaluates
// every segment's offset at each instantiation and wasmtime (with its
// copy-on-write images off) copies segments one by one, and a Go module
// has about 40,000 segments a few hundred bytes apart.
package datamerge

import (
	"slices"

	"github.com/blockhost/blockhost/host/engine/internal/wasmbin"
)

// The result initialises memory exactly as the original does, which holds
// when:
//   - every segment is active, in memory 0, at an offset that is a
//     constant (i32.const, or i64.const for a 64-bit memory): only then is
//     the layout known before instantiation;
//   - memory 0 is the module's own, not imported: a fresh memory is all
//     zeros, so the zeros put in the gaps change nothing, and no other
//     module can see the order segments are copied in, should one of them
//     be out of bounds and instantiation fail;
//   - no two segments overlap: then the order they are copied in does not
//     matter, so they may be sorted by offset, and no segment lies in the
//     gap between two neighbours;
//   - no instruction names a segment by its index (memory.init, data.drop),
//     as merging renumbers them. Such instructions need a data count
//     section, so the code is searched only when there is one.
//
// Otherwise, and when no two segments are close enough to merge, the
// module is returned unchanged. A segment past the end of memory stays
// past it (the merged one ends where the last of its segments did), so
// instantiation fails as it did.

// Merge returns wasm with its data segments merged in a new slice, or wasm
// itself (the same slice) when it changes nothing; with an error when it cannot be decoded, which the compiler
// then reports. gap is the widest run of zeros, in bytes, written out to
// join two segments: each engine sets it where copying that many zeros
// costs about what one more segment costs it.
func Merge(wasm []byte, gap uint64) ([]byte, error) {
	m, err := wasmbin.Parse(wasm)
	if err != nil {
		return wasm, err
	}
	di := m.Index(wasmbin.SectionData)
	if di < 0 {
		return wasm, nil
	}
	mems, imported, err := m.Memories()
	if err != nil || imported {
		return wasm, err
	}
	if len(mems) == 0 {
		return wasm, nil // data but no memory: the compiler says so
	}
	segs, err := wasmbin.ReadVec(m.Sections[di], (*wasmbin.Reader).Data)
	if err != nil || len(segs) < 2 {
		return wasm, err
	}

	type placed struct {
		start, end uint64
		init       []byte
	}
	limit := uint64(1) << 32 // addresses of a 32-bit memory
	if mems[0].Is64() {
		limit = 1<<64 - 1
	}
	spans := make([]placed, len(segs))
	for i, d := range segs {
		if d.Passive || d.Memory != 0 {
			return wasm, nil
		}
		var start uint64
		if mems[0].Is64() {
			v, ok := wasmbin.ConstI64(d.Offset)
			if !ok {
				return wasm, nil
			}
			start = uint64(v)
		} else {
			v, ok := wasmbin.ConstI32(d.Offset)
			if !ok {
				return wasm, nil
			}
			start = uint64(uint32(v))
		}
		if start > limit-uint64(len(d.Init)) {
			return wasm, nil // out of any memory: leave the failure to wazero
		}
		spans[i] = placed{start, start + uint64(len(d.Init)), d.Init}
	}
	ci := m.Index(wasmbin.SectionDataCount)
	if ci >= 0 {
		if named, err := namesSegments(m); err != nil || named {
			return wasm, err
		}
	}

	slices.SortStableFunc(spans, func(a, b placed) int {
		switch {
		case a.start < b.start:
			return -1
		case a.start > b.start:
			return 1
		}
		return 0
	})
	runs := 1
	for i := 1; i < len(spans); i++ {
		if spans[i].start < spans[i-1].end {
			return wasm, nil // overlap: order matters, keep it
		}
		if spans[i].start-spans[i-1].end > gap {
			runs++
		}
	}
	if runs == len(spans) {
		return wasm, nil
	}

	offset := func(v uint64) []byte {
		if mems[0].Is64() {
			return wasmbin.I64Const(int64(v))
		}
		return wasmbin.I32Const(int32(uint32(v)))
	}
	size := len(m.Sections[di].Content) + runs*16
	for i := 1; i < len(spans); i++ {
		if g := spans[i].start - spans[i-1].end; g <= gap {
			size += int(g)
		}
	}
	data := wasmbin.AppendU32(make([]byte, 0, size), uint32(runs))
	var init []byte
	for i := 0; i < len(spans); {
		j, end := i+1, spans[i].end
		for j < len(spans) && spans[j].start-end <= gap {
			end = spans[j].end
			j++
		}
		init = init[:0]
		for k := i; k < j; k++ {
			init = append(init, make([]byte, spans[k].start-spans[i].start-uint64(len(init)))...)
			init = append(init, spans[k].init...)
		}
		data = wasmbin.AppendData(data, wasmbin.Data{Offset: offset(spans[i].start), Init: init})
		i = j
	}
	m.Sections[di].Content = data
	if ci >= 0 {
		m.Sections[ci].Content = wasmbin.AppendU32(nil, uint32(runs))
	}
	return m.Encode(), nil
}

// namesSegments reports whether any function refers to a data segment by
// its index: memory.init or data.drop.
func namesSegments(m *wasmbin.Module) (bool, error) {
	ci := m.Index(wasmbin.SectionCode)
	if ci < 0 {
		return false, nil
	}
	r := m.Sections[ci].Reader()
	for range r.Count() {
		body := wasmbin.NewReader(r.Bytes(int(r.U32())))
		body.Locals()
		for !body.Done() {
			if rest := body.Rest(); rest[0] == 0xfc {
				switch sub := wasmbin.NewReader(rest[1:]).U32(); sub {
				case 8, 9: // memory.init, data.drop
					return true, nil
				}
			}
			body.SkipInstr()
		}
		if err := body.Err(); err != nil {
			return false, err
		}
	}
	return false, r.Err()
}
