package wazero

import (
	"errors"
	"fmt"

	"github.com/blockhost/blockhost/host/engine/internal/wasmbin"
)

// A module's function table is filled lazily, entry by entry, on the
// first call through each entry.
//
// wazero fills a table's active element segment at every instantiation,
// one entry at a time, and each entry costs an evaluated constant
// expression and an allocated function reference. A Go guest's table holds
// every function of the program (the Go runtime resumes a goroutine's
// frames through it): 2,462 entries for the hello example, three
// quarters of a fresh wazero step (docs/benchmarks.md, seventh round).
// A step calls through a few dozen of them.
//
// So when a module's table is one the guest can reach only through
// call_indirect, the rewrite (addInterruptChecks, with lazyTable's plan):
//
//   - turns the active element segment into a declarative one, which
//     wazero does not evaluate at instantiation but which still declares
//     its functions for ref.func;
//   - appends a function, fill(i), which sets entry i to the function the
//     segment put there (a br_table over the segment, then ref.func and
//     table.set), of a type the module has already, [i32] -> [] or
//     [i32] -> [i32] (a module with neither keeps its table);
//   - puts a guard before every call_indirect and return_call_indirect:
//     when the index lies in the segment and its entry is still null, it
//     calls fill. The guard keeps the index in a local of its own, added
//     to each function that has one (a call to a function doing the same
//     cost 2 ns more an indirect call than the guard inline; the guard
//     itself about 0.7 ns, docs/benchmarks.md, seventh round).
//
// Every call_indirect then sees the entry the segment would have put
// there, or, outside the segment, the null or the out-of-bounds index it
// would have seen, and traps alike. The rewrite applies only where that
// holds by construction: one table, the module's own, of funcref, not
// exported, large enough for its one active segment with a constant
// offset, and no instruction other than call_indirect that reads or
// writes a table or an element segment (table.get, table.set, table.size,
// table.grow, table.fill, table.copy, table.init, elem.drop, and the GC
// proposal's instructions). Any other module keeps its table as it came.
//
// fill takes no interruption check: it neither loops nor calls, so it
// ends in bounded time. The module's own code was written against its own
// functions and locals, so a function index naming fill, or a local index
// naming the guard's local, would have been invalid before the rewrite:
// the rewrite refuses such a module rather than make it valid. (It adds
// no type, so no type index changes meaning.)
//
// fill's code grows with the segment, and wazero compiles it at about
// 60-100 µs an entry: a segment past maxLazyEntries is left as it came,
// which bounds what a small module with a long segment can cost the
// compiler. A Go block of 3.8 MB has about 2,500 entries. wazero's
// compiler also takes time growing with the square of a function's
// branches, and each guard adds two: a function with more than
// maxGuards indirect calls leaves the module's table as it came.
type lazyTable struct {
	funcs uint32 // the module's functions, imported and its own
	// fillType is the module's own type fill takes, [i32] -> [] or, with
	// fillResult, [i32] -> [i32]: adding a type of our own would make valid
	// every invalid reference to the index it took.
	fillType   uint32
	fillResult bool
	offset     uint32   // where the segment starts in the table
	elems      []uint32 // the segment's functions
	elemAt     int      // the element section's position in the module
	// params is how many parameters each of the module's own functions
	// takes: its first local past them is the guard's.
	params []uint32
}

// fill is the index of the added function.
func (lt *lazyTable) fill() uint32 { return lt.funcs }

// errTableUsed reports an instruction that rules the lazy table out.
var errTableUsed = errors.New("the module's code uses its table otherwise than by call_indirect")

// maxLazyEntries bounds the segment the rewrite fills lazily: fill has a
// block and a br_table label for each entry.
const maxLazyEntries = 1 << 15

// maxGuards bounds the indirect calls of one function that the rewrite
// guards: hello's largest function has 16. (wazero's compiler took 2.3 s
// for one function of 10,000 ifs and 56 s for 40,000, on a loaded
// machine; 1,000 guards add 2,000.)
const maxGuards = 1000

// planLazyTable returns the plan for m, or nil when its table is not one
// the rewrite may fill lazily; importedFuncs and importedTables count the
// module's imports of each, and exports are its exports (addInterruptChecks
// has read both already). An error reports a function index out of
// range where the module names one: the module was invalid.
func planLazyTable(m *wasmbin.Module, importedFuncs, importedTables uint32, exports []wasmbin.Export) (*lazyTable, error) {
	ti, ei, fi, tyi := m.Index(wasmbin.SectionTable), m.Index(wasmbin.SectionElement),
		m.Index(wasmbin.SectionFunction), m.Index(wasmbin.SectionType)
	if importedTables > 0 || ti < 0 || ei < 0 || fi < 0 || tyi < 0 {
		return nil, nil
	}
	tables, err := wasmbin.ReadVec(m.Sections[ti], (*wasmbin.Reader).Table)
	if err != nil || len(tables) != 1 || tables[0].Elem != wasmbin.FuncRef {
		return nil, nil
	}
	lt := &lazyTable{elemAt: ei}
	// Each type's parameter count, and fill's type; a type of any other
	// form than a function's (the GC proposal's) rules the rewrite out.
	tr := m.Sections[tyi].Reader()
	params := make([]uint32, tr.Count())
	found := false
	for i := range params {
		if tr.Byte() != 0x60 {
			return nil, nil
		}
		start := tr.Pos()
		params[i] = tr.Count()
		for range params[i] {
			tr.ValType()
		}
		for range tr.Count() {
			tr.ValType()
		}
		if tr.Err() != nil {
			return nil, nil
		}
		switch string(m.Sections[tyi].Content[start:tr.Pos()]) {
		case "\x01\x7f\x00":
			lt.fillType, lt.fillResult, found = uint32(i), false, true
		case "\x01\x7f\x01\x7f":
			if !found {
				lt.fillType, lt.fillResult, found = uint32(i), true, true
			}
		}
	}
	if !found {
		return nil, nil // a Go module always has [i32] -> [i32]
	}
	fr := m.Sections[fi].Reader()
	lt.params = make([]uint32, fr.Count())
	for i := range lt.params {
		if t := fr.U32(); int(t) < len(params) {
			lt.params[i] = params[t]
		} else {
			return nil, nil // wazero's to refuse
		}
	}
	lt.funcs = importedFuncs + uint32(len(lt.params))
	if fr.Err() != nil || tr.Err() != nil || lt.funcs < importedFuncs || lt.funcs >= 1<<31 {
		return nil, nil
	}
	// One active segment of function indices, flags 0: table 0, a
	// constant offset.
	r := m.Sections[ei].Reader()
	if r.Count() != 1 || r.Byte() != 0x00 {
		return nil, nil
	}
	off, ok := wasmbin.ConstI32(r.ConstExpr())
	n := r.Count()
	if !ok || r.Err() != nil || n == 0 || n > maxLazyEntries {
		return nil, nil
	}
	lt.offset = uint32(off)
	lt.elems = make([]uint32, n)
	for i := range lt.elems {
		lt.elems[i] = r.U32()
	}
	if r.Err() != nil || !r.Done() {
		return nil, nil
	}
	if uint64(lt.offset)+uint64(n) > uint64(tables[0].Min) {
		return nil, nil // wazero leaves such a segment unapplied
	}
	for _, f := range lt.elems {
		if f >= lt.funcs {
			return nil, fmt.Errorf("%w: element segment: function index %d out of range", errMalformed, f)
		}
	}
	// Function indices named elsewhere than in code.
	for _, e := range exports {
		switch {
		case e.Kind == wasmbin.KindTable:
			return nil, nil
		case e.Kind == wasmbin.KindFunc && e.Index >= lt.funcs:
			return nil, fmt.Errorf("%w: export %q: function index %d out of range", errMalformed, e.Name, e.Index)
		}
	}
	if i := m.Index(wasmbin.SectionStart); i >= 0 {
		r := m.Sections[i].Reader()
		if f := r.U32(); r.Err() == nil && f >= lt.funcs {
			return nil, fmt.Errorf("%w: start function index %d out of range", errMalformed, f)
		}
	}
	if i := m.Index(wasmbin.SectionGlobal); i >= 0 {
		globals, err := wasmbin.ReadVec(m.Sections[i], (*wasmbin.Reader).Global)
		if err != nil {
			return nil, err
		}
		for gi, g := range globals {
			if err := checkFuncRefs(g.Init, lt.funcs); err != nil {
				return nil, fmt.Errorf("%w: global %d: %v", errMalformed, gi, err)
			}
		}
	}
	return lt, nil
}

// checkFuncRefs refuses an expression whose ref.func names a function at
// or past funcs.
func checkFuncRefs(expr []byte, funcs uint32) error {
	r := wasmbin.NewReader(expr)
	for !r.Done() {
		at := r.Pos()
		if err := r.SkipInstr(); err != nil {
			return err
		}
		if expr[at] == opRefFunc {
			if f := wasmbin.NewReader(expr[at+1 : r.Pos()]).U32(); f >= funcs {
				return fmt.Errorf("function index %d out of range", f)
			}
		}
	}
	return nil
}

const (
	opCall               = 0x10
	opCallIndirect       = 0x11
	opReturnCall         = 0x12
	opReturnCallIndirect = 0x13
	opLocalGet           = 0x20
	opLocalSet           = 0x21
	opLocalTee           = 0x22
	opTableGet           = 0x25
	opTableSet           = 0x26
	opRefFunc            = 0xd2
	opEnd                = 0x0b
)

// tableOps are the 0xfc sub-opcodes that read or write a table or an
// element segment: table.init, elem.drop, table.copy, table.grow,
// table.size, table.fill.
var tableOps = map[byte]bool{12: true, 13: true, 14: true, 15: true, 16: true, 17: true}

// checkInstr applies the plan's rules to the instruction in code[at:end]
// of a body whose locals, parameters included, number locals: errTableUsed
// for one that rules the lazy table out, an error for a function or local
// index out of range (the guard's local is the first past them).
func (lt *lazyTable) checkInstr(code []byte, at, end int, locals uint64) error {
	switch op := code[at]; op {
	case opLocalGet, opLocalSet, opLocalTee:
		if l := wasmbin.NewReader(code[at+1 : end]).U32(); uint64(l) >= locals {
			return fmt.Errorf("%w: local index %d out of range", errMalformed, l)
		}
	case opTableGet, opTableSet, opGCPrefix:
		return errTableUsed
	case opMiscPrefix:
		if tableOps[code[at+1]] {
			return errTableUsed
		}
	case opCall, opReturnCall, opRefFunc:
		if f := wasmbin.NewReader(code[at+1 : end]).U32(); f >= lt.funcs {
			return fmt.Errorf("%w: function index %d out of range", errMalformed, f)
		}
	}
	return nil
}

// guard returns the guard for a call_indirect, in the text format, with
// the index in local s:
//
//	local.tee s
//	local.get s  i32.const offset  i32.sub  i32.const len  i32.lt_u
//	if
//	  local.get s  table.get 0  ref.is_null
//	  if  local.get s  call $fill  (drop)  end
//	end
func (lt *lazyTable) guard(s uint32) []byte {
	get := func(b []byte) []byte { return wasmbin.AppendU32(append(b, opLocalGet), s) }
	b := wasmbin.AppendU32([]byte{opLocalTee}, s)
	b = get(b)
	b = wasmbin.AppendS32(append(b, opI32Const), int32(lt.offset))
	b = append(b, 0x6b) // i32.sub
	b = wasmbin.AppendS32(append(b, opI32Const), int32(len(lt.elems)))
	b = append(b, 0x49, 0x04, 0x40) // i32.lt_u, if
	b = get(b)
	b = append(b, opTableGet, 0x00, 0xd1, 0x04, 0x40) // table.get 0, ref.is_null, if
	b = get(b)
	b = wasmbin.AppendU32(append(b, opCall), lt.fill())
	if lt.fillResult {
		b = append(b, 0x1a) // drop
	}
	return append(b, opEnd, opEnd)
}

// withGuardLocal returns the local declarations decl, which declare n
// locals, with one i32 more: the guard's, whose index is then params+n.
func withGuardLocal(decl []byte) []byte {
	r := wasmbin.NewReader(decl)
	groups := r.U32()
	out := wasmbin.AppendU32(make([]byte, 0, len(decl)+3), groups+1)
	out = append(out, decl[r.Pos():]...)
	return append(out, 0x01, 0x7f)
}

// fillBody returns the encoded body of fill(i): one block per entry, a
// br_table on i-offset to the end of entry k's block, and after it
// `table[i] = ref.func elems[k]`.
func (lt *lazyTable) fillBody() []byte {
	n := len(lt.elems)
	b := make([]byte, 0, 1+2*n+16+3*n+12*n)
	b = append(b, 0x00) // no locals
	for range n {
		b = append(b, 0x02, 0x40) // block
	}
	b = append(b, opLocalGet, 0x00)
	b = wasmbin.AppendS32(append(b, opI32Const), int32(lt.offset))
	b = append(b, 0x6b, 0x0e) // i32.sub, br_table
	b = wasmbin.AppendU32(b, uint32(n))
	for k := range n {
		b = wasmbin.AppendU32(b, uint32(k))
	}
	b = wasmbin.AppendU32(b, uint32(n-1)) // unreachable: the guard checked the range
	for _, f := range lt.elems {
		b = append(b, opEnd, opLocalGet, 0x00, opRefFunc)
		b = wasmbin.AppendU32(b, f)
		b = append(b, opTableSet, 0x00) // table.set 0
		if lt.fillResult {
			b = append(b, opI32Const, 0x00) // a result nobody reads
		}
		b = append(b, 0x0f) // return
	}
	return append(b, opEnd)
}

// apply rewrites m's function and element sections for the plan; the
// code section is rewriteCode's.
func (lt *lazyTable) apply(m *wasmbin.Module) error {
	if err := m.AppendEntries(wasmbin.SectionFunction, 1, wasmbin.AppendU32(nil, lt.fillType)); err != nil {
		return err
	}
	// One declarative segment (flags 3, elemkind funcref) of the same
	// functions.
	e := wasmbin.AppendU32([]byte{0x01, 0x03, 0x00}, uint32(len(lt.elems)))
	for _, f := range lt.elems {
		e = wasmbin.AppendU32(e, f)
	}
	m.Sections[lt.elemAt].Content = e
	return nil
}
