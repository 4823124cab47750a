package datamerge

import "github.com/blockhost/blockhost/host/engine/internal/wasmbin"

// Memory images. An engine instantiates a module by allocating its memory
// zeroed and then copying every active data segment into it: for a Go
// module, zeroing ~4 MB and copying ~2 MB in every step, for a step that
// then touches a small part of either. SplitImage moves that work to
// load time: it lays the segments out once, in the order instantiation
// would write them, into an image of the memory's initial contents, and
// empties the segments in the module the engine compiles. Each instance's
// memory then starts as the image, which each engine maps or copies (the
// wazero engine's memory.go, the wasmtime engine's memory creator).
//
// The image describes what instantiation writes exactly when:
//   - memory 0 is the module's own (not imported), 32-bit, not shared, of
//     64 KiB pages: a fresh memory is zeros, nothing else sees it being
//     written;
//   - every data segment is active, in memory 0, at an i32.const offset:
//     only then is the layout known before instantiation;
//   - every segment lies within the memory's minimum size: otherwise
//     instantiation fails, which the unchanged module still does.
//
// Otherwise the module is left as it is. The emptied segments keep their
// offsets and indices, so the data count and any memory.init or data.drop
// still name the same segments; an active segment is dropped by
// instantiation in any case (WebAssembly 2.0, 4.5.4), so its bytes are
// not needed after it.

// SplitImage returns wasm with its active data segments emptied and the
// image of memory they write, its length a multiple of imagePage; or wasm
// and nil when the conditions above do not hold or no segment has bytes.
func SplitImage(wasm []byte) ([]byte, []byte) {
	m, err := wasmbin.Parse(wasm)
	if err != nil {
		return wasm, nil
	}
	di := m.Index(wasmbin.SectionData)
	if di < 0 {
		return wasm, nil
	}
	mems, imported, err := m.Memories()
	if err != nil || imported {
		return wasm, nil
	}
	if len(mems) != 1 || mems[0].Is64() || mems[0].Flags&0x02 != 0 || mems[0].PageLog2 != 16 {
		return wasm, nil
	}
	minBytes := mems[0].Min * wasmPage
	segs, err := wasmbin.ReadVec(m.Sections[di], (*wasmbin.Reader).Data)
	if err != nil {
		return wasm, nil
	}
	var end uint64
	for _, d := range segs {
		if d.Passive || d.Memory != 0 {
			return wasm, nil
		}
		off, ok := wasmbin.ConstI32(d.Offset)
		if !ok {
			return wasm, nil
		}
		e := uint64(uint32(off)) + uint64(len(d.Init))
		if e > minBytes {
			return wasm, nil
		}
		if len(d.Init) > 0 {
			end = max(end, e)
		}
	}
	if end == 0 {
		return wasm, nil
	}
	img := make([]byte, (end+imagePage-1)/imagePage*imagePage)
	data := wasmbin.AppendU32(make([]byte, 0, 8*len(segs)+5), uint32(len(segs)))
	for _, d := range segs {
		off, _ := wasmbin.ConstI32(d.Offset)
		copy(img[uint32(off):], d.Init)
		d.Init = nil
		data = wasmbin.AppendData(data, d)
	}
	m.Sections[di].Content = data
	return m.Encode(), img
}

// imagePage is the granule of an image's length: a WebAssembly page, a
// multiple of the host's page on every platform Go supports, so that a
// mapping of the image ends on a page boundary, and never past the
// memory's minimum size.
const imagePage = wasmPage

// wasmPage is WebAssembly's page size.
const wasmPage = 65536
