package wasmtime

import (
	"bytes"
	"slices"
)

// The engine instantiates with memory_init_cow off (see baseConfig), so
// wasmtime copies a module's data segments into each new instance one by
// one. A Go-built module has tens of thousands of small segments (hello:
// 40,161 segments, 985 KB, spread over 1.7 MB with the zero runs left out),
// and the copy then costs more per segment than per byte. mergeData
// rewrites the data section at load so that active segments that lie close
// together become one, the gaps between them filled with the zeros a fresh
// memory holds anyway: the memory an instance starts with is byte for byte
// the same.
//
// It leaves the module as it is unless the rewrite is plainly equivalent:
// every segment active, on memory 0, at an i32.const offset, none empty,
// none overlapping another (their order would matter), and no data count
// section (without one, no instruction can name a segment, so renumbering
// them is invisible). A merged segment ends where one of the originals
// ended and every original lies inside one, so a module whose segment did
// not fit its memory still fails to instantiate.

// mergeGap is the largest run of zeros between two segments that is
// written out to join them; a wider gap keeps them apart, so that a sparse
// module does not grow.
const mergeGap = 4096

type dataSegment struct {
	offset uint64
	init   []byte
}

// mergeData returns wasm with its data segments merged, and true; or wasm
// itself and false when there is nothing to merge or the merge would not be
// plainly equivalent.
func mergeData(wasm []byte) ([]byte, bool) {
	secs, err := splitSections(wasm)
	if err != nil {
		return wasm, false
	}
	dataIdx := -1
	for i, s := range secs {
		switch s.id {
		case 12: // data count: code may refer to segments by index
			return wasm, false
		case 11:
			dataIdx = i
		}
	}
	if dataIdx < 0 {
		return wasm, false
	}
	segs, ok := readDataSegments(secs[dataIdx].content)
	if !ok || len(segs) < 2 {
		return wasm, false
	}
	slices.SortStableFunc(segs, func(a, b dataSegment) int {
		switch {
		case a.offset < b.offset:
			return -1
		case a.offset > b.offset:
			return 1
		}
		return 0
	})
	var merged []dataSegment
	for _, s := range segs {
		if n := len(merged); n > 0 {
			last := &merged[n-1]
			end := last.offset + uint64(len(last.init))
			if s.offset < end {
				return wasm, false // overlap: the order of the writes matters
			}
			if s.offset-end <= mergeGap {
				last.init = append(last.init, make([]byte, s.offset-end)...)
				last.init = append(last.init, s.init...)
				continue
			}
		}
		merged = append(merged, dataSegment{s.offset, slices.Clip(s.init)})
	}
	if len(merged) == len(segs) {
		return wasm, false
	}
	content := appendU32(nil, uint32(len(merged)))
	for _, s := range merged {
		content = append(content, 0x00, 0x41) // active, memory 0; i32.const
		content = appendS64(content, int64(int32(uint32(s.offset))))
		content = append(content, 0x0b)
		content = appendU32(content, uint32(len(s.init)))
		content = append(content, s.init...)
	}
	secs[dataIdx].content = content
	var out bytes.Buffer
	out.Grow(len(wasm) + len(content))
	out.Write(wasm[:8])
	for _, s := range secs {
		out.WriteByte(s.id)
		out.Write(appendU32(nil, uint32(len(s.content))))
		out.Write(s.content)
	}
	return out.Bytes(), true
}

// readDataSegments reads a data section whose segments are all active on
// memory 0 at an i32.const offset and not empty; ok is false for any other.
func readDataSegments(sec []byte) (segs []dataSegment, ok bool) {
	r := reader{b: sec}
	n := r.count()
	for range n {
		if r.u32() != 0 || r.byte() != 0x41 {
			return nil, false
		}
		off, good := r.s32()
		if !good || r.byte() != 0x0b {
			return nil, false
		}
		init := r.bytes(int(r.u32()))
		if r.err != nil || len(init) == 0 {
			return nil, false
		}
		// The offset is an i32 read as unsigned, as memory addresses are.
		segs = append(segs, dataSegment{uint64(uint32(off)), init})
	}
	if r.err != nil || r.pos != len(sec) {
		return nil, false
	}
	return segs, true
}

// s32 reads a signed LEB128 of at most 32 bits, as i32.const holds.
func (r *reader) s32() (int32, bool) {
	var v int64
	var shift uint
	for i := 0; i < 5; i++ {
		b := r.byte()
		if r.err != nil {
			return 0, false
		}
		v |= int64(b&0x7f) << shift
		shift += 7
		if b&0x80 == 0 {
			if shift < 64 && b&0x40 != 0 {
				v |= -1 << shift
			}
			if v < -1<<31 || v > 1<<31-1 {
				return 0, false
			}
			return int32(v), true
		}
	}
	return 0, false
}
