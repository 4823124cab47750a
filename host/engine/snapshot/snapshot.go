// Package snapshot rewrites a reactor module so that it starts in the
// state its initialisation left — the technique of wizer — for the host's
// snapshots after initialisation (docs/engines.md, "Snapshots").
//
// The host prepares a Plan from a module, runs the plan's capture module
// (the module with its mutable globals exported) through _initialize on
// its engine, takes an Image of linear memory and the globals from the
// live instance, and has the plan rewrite the module from the image:
//
//   - the data section becomes the image's memory, in segments that skip
//     long runs of zeros;
//   - each mutable global's initialiser becomes the captured value;
//   - the memory's minimum becomes the image's size;
//   - the export _initialize and the start section are removed, since
//     what they did is in the image.
//
// Guarantees:
//   - Prepare refuses, with an error matching ErrUnsupported, every module
//     the rewrite cannot reproduce: a memory or global that is imported, a
//     memory that is 64-bit, shared, of custom page size or not exported as
//     "memory", more than one memory, a passive data segment, a mutable
//     global of a type other than i32, i64, f32 and f64, no _initialize.
//     Malformed bytes are refused too (the wasmbin error).
//   - The rewritten module has the same imports, functions, tables,
//     elements and exports (less _initialize) as the original; only
//     memory, globals, data and the start section differ.
//
// What the rewrite cannot see is promised by the module through the
// snapshot marker (docs/abi.md §2.1): that initialisation changes no
// table and depends on nothing that differs between steps beyond what the
// host holds fixed.
package snapshot

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"

	"github.com/blockhost/blockhost/abi"
	"github.com/blockhost/blockhost/host/engine"
	"github.com/blockhost/blockhost/host/engine/internal/wasmbin"
)

// RewriteVersion names the rewrite; it is part of every cache entry's key,
// so entries written by another version of it are not used.
const RewriteVersion = "snapshot-rewrite 1"

// globalExportPrefix names the exports the capture module adds, one per
// mutable global: the prefix and the global's index.
const globalExportPrefix = "blockhost_snapshot_global_"

// zeroGap is the shortest run of zero bytes the rewrite leaves out of the
// data: a shorter one is kept inside a segment, since each segment costs
// an engine more at instantiation than copying a few zeros.
const zeroGap = 1024

// Plan is a module prepared for a snapshot.
type Plan struct {
	wasm    []byte
	capture []byte
	// globals are the module's globals (it imports none); mutable ones
	// are captured.
	globals []wasmbin.Global
}

// Image is what an instance held after initialisation.
type Image struct {
	// Memory is linear memory, a whole number of 64 KiB pages.
	Memory []byte
	// Globals holds each of the module's own globals' bits, by index among
	// them; immutable ones are zero and not used.
	Globals []uint64
}

// Prepare checks that the rewrite supports wasm and returns its plan.
func Prepare(wasm []byte) (*Plan, error) {
	m, err := wasmbin.Parse(wasm)
	if err != nil {
		return nil, err
	}
	p := &Plan{wasm: wasm}
	var memories, dataSec int
	hasInit := false
	for _, s := range m.Sections {
		switch s.ID {
		case wasmbin.SectionImport:
			ims, err := wasmbin.ReadVec(s, (*wasmbin.Reader).Import)
			if err != nil {
				return nil, err
			}
			for _, im := range ims {
				switch im.Kind {
				case wasmbin.KindMemory:
					return nil, unsupported("an imported memory")
				case wasmbin.KindGlobal:
					return nil, unsupported("an imported global")
				}
			}
		case wasmbin.SectionMemory:
			mems, err := wasmbin.ReadVec(s, (*wasmbin.Reader).Memory)
			if err != nil {
				return nil, err
			}
			memories += len(mems)
			for _, mt := range mems {
				if mt.Is64() || mt.Flags&0x02 != 0 || mt.PageLog2 != 16 {
					return nil, unsupported("a 64-bit, shared or custom-page-size memory")
				}
			}
		case wasmbin.SectionGlobal:
			if p.globals, err = wasmbin.ReadVec(s, (*wasmbin.Reader).Global); err != nil {
				return nil, err
			}
			for _, g := range p.globals {
				if g.Type.Mutable && !numeric(g.Type.Type) {
					return nil, unsupported("a mutable global that is not a number")
				}
			}
		case wasmbin.SectionExport:
			exs, err := wasmbin.ReadVec(s, (*wasmbin.Reader).Export)
			if err != nil {
				return nil, err
			}
			memExported := false
			for _, ex := range exs {
				switch {
				case ex.Name == abi.ExportMemory && ex.Kind == wasmbin.KindMemory && ex.Index == 0:
					memExported = true
				case ex.Name == abi.ExportInitialize && ex.Kind == wasmbin.KindFunc:
					hasInit = true
				}
			}
			if !memExported {
				return nil, unsupported(`no memory exported as "memory"`)
			}
		case wasmbin.SectionData:
			dataSec++
			segs, err := wasmbin.ReadVec(s, (*wasmbin.Reader).Data)
			if err != nil {
				return nil, err
			}
			for _, d := range segs {
				if d.Passive {
					return nil, unsupported("a passive data segment")
				}
			}
		}
	}
	switch {
	case memories != 1:
		return nil, unsupported(strconv.Itoa(memories) + " memories, not one")
	case !hasInit:
		return nil, unsupported("no _initialize export")
	case dataSec > 1:
		return nil, unsupported("more than one data section")
	}

	// The capture module exports every mutable global, which adds exports
	// and shifts no index.
	var entries []byte
	var n uint32
	for i, g := range p.globals {
		if g.Type.Mutable {
			entries = wasmbin.AppendExport(entries, wasmbin.Export{
				Name: globalExportPrefix + strconv.Itoa(i), Kind: wasmbin.KindGlobal, Index: uint32(i)})
			n++
		}
	}
	if err := m.AppendEntries(wasmbin.SectionExport, n, entries); err != nil {
		return nil, err
	}
	p.capture = m.Encode()
	return p, nil
}

func numeric(t wasmbin.ValType) bool {
	return t == wasmbin.I32 || t == wasmbin.I64 || t == wasmbin.F32 || t == wasmbin.F64
}

// CaptureModule is the module to run _initialize in: the original with
// its mutable globals exported.
func (p *Plan) CaptureModule() []byte { return p.capture }

// Take copies the image out of a live instance of the capture module.
func (p *Plan) Take(inst engine.Instance) (*Image, error) {
	mem := inst.Memory()
	if mem == nil || len(mem)%65536 != 0 {
		return nil, fmt.Errorf("snapshot: the instance has no memory of whole pages (%d bytes)", len(mem))
	}
	img := &Image{Memory: bytes.Clone(mem), Globals: make([]uint64, len(p.globals))}
	for i, g := range p.globals {
		if !g.Type.Mutable {
			continue
		}
		v, ok := inst.Global(globalExportPrefix + strconv.Itoa(i))
		if !ok {
			return nil, fmt.Errorf("snapshot: the instance does not export global %d", i)
		}
		img.Globals[i] = v
	}
	return img, nil
}

// Rewrite returns the module rewritten to start in the state of img.
func (p *Plan) Rewrite(img *Image) ([]byte, error) {
	if len(img.Globals) != len(p.globals) || len(img.Memory)%65536 != 0 {
		return nil, fmt.Errorf("snapshot: the image does not fit the module (%d globals, %d bytes of memory)", len(img.Globals), len(img.Memory))
	}
	m, err := wasmbin.Parse(p.wasm)
	if err != nil {
		return nil, err
	}
	segments, nsegs := dataSegments(img.Memory)
	out := m.Sections[:0:0]
	for _, s := range m.Sections {
		switch s.ID {
		case wasmbin.SectionStart:
			continue // it ran before the image was taken
		case wasmbin.SectionMemory:
			mt, err := wasmbin.ReadVec(s, (*wasmbin.Reader).Memory)
			if err != nil {
				return nil, err
			}
			pages := uint64(len(img.Memory) / 65536)
			if mt[0].HasMax() && pages > mt[0].Max {
				return nil, fmt.Errorf("snapshot: the image's %d pages are more than the memory's maximum of %d", pages, mt[0].Max)
			}
			c := append(wasmbin.AppendU32(nil, 1), mt[0].Flags)
			c = wasmbin.AppendU64(c, pages)
			if mt[0].HasMax() {
				c = wasmbin.AppendU64(c, mt[0].Max)
			}
			s.Content = c
		case wasmbin.SectionGlobal:
			c := wasmbin.AppendU32(nil, uint32(len(p.globals)))
			for i, g := range p.globals {
				if g.Type.Mutable {
					g.Init = constExpr(g.Type.Type, img.Globals[i])
				}
				c = wasmbin.AppendGlobal(c, g)
			}
			s.Content = c
		case wasmbin.SectionExport:
			exs, err := wasmbin.ReadVec(s, (*wasmbin.Reader).Export)
			if err != nil {
				return nil, err
			}
			var c []byte
			var n uint32
			for _, ex := range exs {
				if ex.Name == abi.ExportInitialize && ex.Kind == wasmbin.KindFunc {
					continue
				}
				c = wasmbin.AppendExport(c, ex)
				n++
			}
			s.Content = append(wasmbin.AppendU32(nil, n), c...)
		case wasmbin.SectionDataCount:
			s.Content = wasmbin.AppendU32(nil, nsegs)
		case wasmbin.SectionData:
			s.Content = segments
		}
		out = append(out, s)
	}
	m.Sections = out
	if m.Index(wasmbin.SectionData) < 0 {
		m.Insert(wasmbin.Section{ID: wasmbin.SectionData, Content: segments})
	}
	return m.Encode(), nil
}

// dataSegments returns the content of a data section that writes mem's
// bytes into memory 0, leaving out runs of at least zeroGap zeros, and
// the number of its segments.
func dataSegments(mem []byte) ([]byte, uint32) {
	var body []byte
	var n uint32
	for i := 0; i < len(mem); {
		start := i + nonZero(mem[i:])
		if start >= len(mem) {
			break
		}
		// The segment ends where a run of zeroGap zeros begins.
		end := start
		for end < len(mem) {
			z := end + nonZero(mem[end:]) // first non-zero at or after end
			if mem[end] != 0 {
				end++
				continue
			}
			if z-end >= zeroGap || z >= len(mem) {
				break
			}
			end = z
		}
		body = wasmbin.AppendData(body, wasmbin.Data{Offset: wasmbin.I32Const(int32(uint32(start))), Init: mem[start:end]})
		n++
		i = end
	}
	return append(wasmbin.AppendU32(nil, n), body...), n
}

// nonZero returns the index of b's first non-zero byte, or len(b).
func nonZero(b []byte) int {
	for i, c := range b {
		if c != 0 {
			return i
		}
	}
	return len(b)
}

func constExpr(t wasmbin.ValType, v uint64) []byte {
	switch t {
	case wasmbin.I32:
		return wasmbin.I32Const(int32(uint32(v)))
	case wasmbin.I64:
		return wasmbin.I64Const(int64(v))
	case wasmbin.F32:
		return wasmbin.F32Const(uint32(v))
	}
	return wasmbin.F64Const(v)
}

// Marked reports whether wasm exports a function named marker (the SDK's
// snapshot marker, abi.ExportSnapshot), reading section headers and the
// export section only. It is a cheap first test, before anything is
// compiled, of whether a module may have a snapshot; an unreadable module
// is not marked.
func Marked(wasm []byte, marker string) bool {
	found := false
	wasmbin.EachSection(wasm, func(s wasmbin.Section) error {
		if s.ID != wasmbin.SectionExport {
			return nil
		}
		exports, err := wasmbin.ReadVec(s, (*wasmbin.Reader).Export)
		if err != nil {
			return err
		}
		for _, e := range exports {
			if e.Kind == wasmbin.KindFunc && e.Name == marker {
				found = true
			}
		}
		return errStopSections // there is one export section
	})
	return found
}

// errStopSections ends a walk over sections early.
var errStopSections = errors.New("snapshot: stop")
