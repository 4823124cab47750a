package wasmtime

import (
	"errors"
	"fmt"

	"github.com/blockhost/blockhost/host/engine/internal/wasmbin"
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

func memInfoOf(m wasmbin.Memory) memInfo {
	return memInfo{min: m.Min, pageLog2: m.PageLog2, is64: m.Is64()}
}

// hookGrow returns the rewritten module and what the engine needs to know
// about it. On error, wasm should be compiled as it is. With rewrite false
// it only reads the module, for a module whose rewritten form was compiled
// earlier (the disk cache): the information is then that of the rewritten
// module, except hooked, which the caller learns from the compiled
// module's exports.
func hookGrow(wasm []byte, rewrite bool) ([]byte, growInfo, error) {
	m, err := wasmbin.Parse(wasm)
	if err != nil {
		return nil, growInfo{}, err
	}
	var info growInfo
	var importedGlobals, definedGlobals uint32
	exportNames := map[string]bool{}
	for _, s := range m.Sections {
		r := s.Reader()
		switch s.ID {
		case wasmbin.SectionImport:
			for range r.Count() {
				switch im := r.Import(); im.Kind {
				case wasmbin.KindMemory:
					info.memories = append(info.memories, memInfoOf(im.Memory))
				case wasmbin.KindGlobal:
					importedGlobals++
				}
			}
		case wasmbin.SectionMemory:
			for range r.Count() {
				info.memories = append(info.memories, memInfoOf(r.Memory()))
			}
		case wasmbin.SectionGlobal:
			definedGlobals = r.U32()
		case wasmbin.SectionExport:
			for range r.Count() {
				e := r.Export()
				exportNames[e.Name] = true
				if e.Kind == wasmbin.KindMemory && int(e.Index) < len(info.memories) && info.memories[e.Index].export == "" && r.Err() == nil {
					info.memories[e.Index].export = e.Name
				}
			}
		}
		if err := r.Err(); err != nil {
			return nil, growInfo{}, err
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
		newExports = wasmbin.AppendExport(newExports, wasmbin.Export{Name: name, Kind: kind, Index: idx})
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
		addExport(wasiMemoryExport, wasmbin.KindMemory, 0)
	}
	for i := range info.memories {
		if info.memories[i].export == "" {
			info.memories[i].export = memoryExportName(i)
			addExport(info.memories[i].export, wasmbin.KindMemory, uint32(i))
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
		m.Insert(wasmbin.Section{ID: wasmbin.SectionMemory, Content: []byte{0x01, 0x00, 0x00}})
	}
	if codeIdx := m.Index(wasmbin.SectionCode); codeIdx >= 0 && !info.addedMemory {
		code, hooked, err := hookCode(m.Sections[codeIdx], info.memories, g)
		if err != nil {
			return nil, growInfo{}, err
		}
		if hooked {
			m.Sections[codeIdx].Content = code
			info.hooked = true
		}
	}
	if info.hooked {
		addExport(refusedExport, wasmbin.KindGlobal, g.refused())
		entries := []byte{}
		for _, t := range hookGlobalTypes {
			init := wasmbin.I64Const(0)
			if t == wasmbin.I32 {
				init = wasmbin.I32Const(0)
			}
			entries = wasmbin.AppendGlobal(entries, wasmbin.Global{Type: wasmbin.GlobalType{Type: t, Mutable: true}, Init: init})
		}
		if err := m.AppendEntries(wasmbin.SectionGlobal, uint32(len(hookGlobalTypes)), entries); err != nil {
			return nil, growInfo{}, err
		}
	}
	if nNewExports > 0 {
		if err := m.AppendEntries(wasmbin.SectionExport, nNewExports, newExports); err != nil {
			return nil, growInfo{}, err
		}
	}
	return m.Encode(), info, nil
}

// The globals hookGrow adds, in order, after the module's own.
var hookGlobalTypes = []wasmbin.ValType{wasmbin.I64, wasmbin.I32, wasmbin.I32, wasmbin.I64, wasmbin.I64, wasmbin.I64}

type hookGlobals struct{ base uint32 }

func (g hookGlobals) refused() uint32 { return g.base }     // i64: largest refused request, bytes
func (g hookGlobals) delta32() uint32 { return g.base + 1 } // i32
func (g hookGlobals) res32() uint32   { return g.base + 2 } // i32
func (g hookGlobals) delta64() uint32 { return g.base + 3 } // i64
func (g hookGlobals) res64() uint32   { return g.base + 4 } // i64
func (g hookGlobals) request() uint32 { return g.base + 5 } // i64: the failed request, bytes

// growSequence is what replaces memory.grow on memory mem.
func growSequence(out []byte, mem uint32, m memInfo, g hookGlobals) []byte {
	op := func(code byte, idx uint32) { out = wasmbin.AppendU32(append(out, code), idx) }
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
		out = wasmbin.AppendS64(out, 1<<47)
		out = append(out, 0x5a, opIf)     // i64.ge_u, if
		out = append(out, wasmbin.I64...) // (result i64)
		out = append(out, 0x42, 0x7f)     // i64.const -1
		out = append(out, 0x05)           // else
		op(memSize, mem)
		op(globalGet, g.delta64())
		out = append(out, 0x7c, 0x42) // i64.add, i64.const
		out = wasmbin.AppendS64(out, int64(m.pageLog2))
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
		out = wasmbin.AppendS64(out, int64(m.pageLog2))
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
func hookCode(sec wasmbin.Section, mems []memInfo, g hookGlobals) (code []byte, hooked bool, err error) {
	r := sec.Reader()
	count := r.Count()
	out := wasmbin.AppendU32(make([]byte, 0, len(sec.Content)+len(sec.Content)/64), count)
	var body []byte
	for range count {
		size := r.U32()
		fn := r.Bytes(int(size))
		if err := r.Err(); err != nil {
			return nil, false, err
		}
		var grew bool
		body, grew, err = hookBody(body[:0], fn, mems, g)
		if err != nil {
			return nil, false, err
		}
		if grew {
			hooked = true
			out = wasmbin.AppendU32(out, uint32(len(body)))
			out = append(out, body...)
		} else {
			out = wasmbin.AppendU32(out, size)
			out = append(out, fn...)
		}
	}
	if err := r.Err(); err != nil {
		return nil, false, err
	}
	if !r.Done() {
		return nil, false, fmt.Errorf("%w: trailing bytes in the code section", errMalformed)
	}
	if !hooked {
		return sec.Content, false, nil
	}
	return out, true, nil
}

// hookBody copies one function body to out with its memory.grow
// instructions replaced, and reports whether there were any.
func hookBody(out, fn []byte, mems []memInfo, g hookGlobals) ([]byte, bool, error) {
	r := wasmbin.NewReader(fn)
	r.Locals()
	if err := r.Err(); err != nil {
		return nil, false, err
	}
	out = append(out, fn[:r.Pos()]...)
	grew := false
	copied := r.Pos()
	for !r.Done() {
		start := r.Pos()
		if fn[start] == 0x40 { // memory.grow
			r.Byte()
			mem := r.U32()
			if err := r.Err(); err != nil {
				return nil, false, err
			}
			if int(mem) >= len(mems) {
				return nil, false, fmt.Errorf("%w: memory.grow of memory %d", errMalformed, mem)
			}
			out = append(out, fn[copied:start]...)
			out = growSequence(out, mem, mems[mem], g)
			copied = r.Pos()
			grew = true
			continue
		}
		if err := r.SkipInstr(); err != nil {
			return nil, false, err
		}
	}
	out = append(out, fn[copied:]...)
	return out, grew, nil
}
