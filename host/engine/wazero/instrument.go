package wazero

import (
	"errors"
	"fmt"
	"strings"

	"github.com/blockhost/blockhost/host/engine/internal/wasmbin"
)

// Interruption. wazero's own means, its close-on-context-done mode, calls
// out of the guest into Go at every loop header it compiles: about 30 ns
// an iteration, 30 times the cost of the loop itself in a tight one, and
// at the entry of every function of a Go guest (whose functions each start
// with a loop). A Go block's step took 0.76-0.81 ms with it and 0.42 ms
// with the checks below (docs/benchmarks.md, sixth round). The engine instead rewrites every module
// it compiles (addInterruptChecks) so that the guest checks for itself,
// and goes out to Go only once every checkBudget checks:
//
//   - two mutable i32 globals are added after the module's own: the flag,
//     zero at instantiation and exported as interruptExport, and the
//     budget, checkBudget at instantiation and exported as budgetExport;
//   - every function body, and every loop body, starts with a check that
//     takes one from the budget (a load, a subtraction, a store and a
//     branch not taken) and, when it is spent, grows memory 0 by nothing,
//     traps if the flag is set, and refills the budget;
//   - Run sets the flag, then empties the budget, when the run's context
//     ends, and the guest traps at its next check, which classify reports
//     as the interruption it is.
//
// The growth by nothing is the one way out of the guest into Go that
// wazero compiles without an import (which would renumber every
// function): it leaves wazero's code for a Go function call. Without such
// a way out at least now and then, a guest in a tight loop could never be
// stopped by the Go scheduler, and a garbage collection waiting for every
// goroutine to stop would wait for the loop to end: the whole host would
// hang on one guest (a test does exactly this, TestModule_Run_gcDuringLoop).
// A module without a memory is given an empty one for it, exported as
// memoryExport so that host functions still see a module without memory.
//
// Every path of execution that runs unboundedly long passes a loop header
// or a function entry, so a guest in a tight loop, deep recursion or its
// start function stops within checkBudget checks of the flag being set; a
// guest blocked in a host function is the host function's to return
// (package wasip1 returns when the context ends). The guest may race the
// host's emptying of the budget with its own refill; the flag, which only
// the host writes, is then seen at the next refill.
//
// Only the added code can write the two globals. The module's own code was
// written against its own globals, so an instruction naming either index
// would have been invalid before the rewrite; the rewrite refuses such a
// module rather than make it valid, since its code could then clear the
// flag. Constant expressions (global initialisers, segment offsets) may
// only read globals, and reading them tells the guest nothing.
//
// Custom sections such as DWARF's, if any, keep their offsets into the
// code section, which the checks shift; that affects only source positions
// in stack traces.

// checkBudget is how many checks pass between two ways out to Go.
const checkBudget = 1000

// interruptExport and budgetExport name the exports of the flag and the
// budget; the engine hides them.
// memoryExport names the empty memory added to a module without one.
// Every export name starting with reservedPrefix is the engine's
// (startExport too): a module exporting one is refused, so that none of
// the engine's rewrites can be undone or sidestepped by a name already
// taken.
const (
	reservedPrefix  = "blockhost:"
	interruptExport = "blockhost:interrupt"
	budgetExport    = "blockhost:budget"
	memoryExport    = "blockhost:memory"
)

// rewriteVersion names the rewrites of a module before it is compiled (the
// one below, mergeData's, exportStart's and datamerge.SplitImage's) in every disk-cache key: wazero compiles the
// rewritten bytes, so code cached under another version of the rewrites is
// never loaded. Change it whenever their output changes.
const rewriteVersion = "interrupt-flag-4; lazy-table-2; data-merge-1; start-export-1; data-image-1"

const (
	opLoop      = 0x03
	opGlobalGet = 0x23
	opGlobalSet = 0x24
	opI32Const  = 0x41
)

var errMalformed = wasmbin.ErrMalformed

// addInterruptChecks returns wasm with its interruption flag and checks
// added; with an error, wasm unchanged, when it cannot be decoded, names
// a global that does not exist or already exports interruptExport. A
// module without code is returned unchanged: nothing in it can run.
func addInterruptChecks(wasm []byte) ([]byte, error) {
	m, err := wasmbin.Parse(wasm)
	if err != nil {
		return wasm, err
	}
	ci := m.Index(wasmbin.SectionCode)
	if ci < 0 {
		return wasm, nil
	}
	var globals, funcs, tables uint32
	// A module without memory, imported or its own, gets an empty one.
	addMemory := true
	if i := m.Index(wasmbin.SectionMemory); i >= 0 {
		r := m.Sections[i].Reader()
		addMemory = r.Count() == 0
		if err := r.Err(); err != nil {
			return wasm, err
		}
	}
	if i := m.Index(wasmbin.SectionImport); i >= 0 {
		imports, err := wasmbin.ReadVec(m.Sections[i], (*wasmbin.Reader).Import)
		if err != nil {
			return wasm, err
		}
		for _, im := range imports {
			switch im.Kind {
			case wasmbin.KindGlobal:
				globals++
			case wasmbin.KindFunc:
				funcs++
			case wasmbin.KindTable:
				tables++
			case wasmbin.KindMemory:
				addMemory = false
			}
		}
	}
	if i := m.Index(wasmbin.SectionGlobal); i >= 0 {
		r := m.Sections[i].Reader()
		globals += r.Count()
		if err := r.Err(); err != nil {
			return wasm, err
		}
	}
	var exports []wasmbin.Export
	if i := m.Index(wasmbin.SectionExport); i >= 0 {
		if exports, err = wasmbin.ReadVec(m.Sections[i], (*wasmbin.Reader).Export); err != nil {
			return wasm, err
		}
		for _, e := range exports {
			if strings.HasPrefix(e.Name, reservedPrefix) {
				return wasm, fmt.Errorf("the export name %q is reserved for the host (every name starting %q)", e.Name, reservedPrefix)
			}
			if e.Kind == wasmbin.KindGlobal && e.Index >= globals {
				return wasm, fmt.Errorf("%w: export %q: global index %d out of range", errMalformed, e.Name, e.Index)
			}
		}
	}
	lazy, err := planLazyTable(m, funcs, tables, exports)
	if err != nil {
		return wasm, err
	}
	flag, budget := globals, globals+1
	code, err := rewriteCode(m.Sections[ci], flag, budget, lazy)
	if errors.Is(err, errTableUsed) {
		lazy = nil
		code, err = rewriteCode(m.Sections[ci], flag, budget, nil)
	}
	if err != nil {
		return wasm, err
	}
	m.Sections[ci].Content = code
	if lazy != nil {
		if err := lazy.apply(m); err != nil {
			return wasm, err
		}
	}
	if addMemory {
		// An empty memory, for the growth by nothing.
		if err := m.AppendEntries(wasmbin.SectionMemory, 1, []byte{0x01, 0x00, 0x00}); err != nil {
			return wasm, err
		}
	}
	var g []byte
	for _, init := range []int32{0, checkBudget} {
		g = wasmbin.AppendGlobal(g, wasmbin.Global{
			Type: wasmbin.GlobalType{Type: wasmbin.I32, Mutable: true},
			Init: wasmbin.I32Const(init),
		})
	}
	if err := m.AppendEntries(wasmbin.SectionGlobal, 2, g); err != nil {
		return wasm, err
	}
	e := wasmbin.AppendExport(nil, wasmbin.Export{Name: interruptExport, Kind: wasmbin.KindGlobal, Index: flag})
	e = wasmbin.AppendExport(e, wasmbin.Export{Name: budgetExport, Kind: wasmbin.KindGlobal, Index: budget})
	n := uint32(2)
	if addMemory {
		e = wasmbin.AppendExport(e, wasmbin.Export{Name: memoryExport, Kind: wasmbin.KindMemory, Index: 0})
		n++
	}
	if err := m.AppendEntries(wasmbin.SectionExport, n, e); err != nil {
		return wasm, err
	}
	return m.Encode(), nil
}

// interruptCheck is the check, in the text format:
//
//	global.get $budget  i32.const 1  i32.sub  global.set $budget
//	global.get $budget  i32.const 0  i32.le_s
//	if
//	  i32.const 0  memory.grow 0  drop
//	  global.get $flag  if  unreachable  end
//	  i32.const checkBudget  global.set $budget
//	end
func interruptCheck(flag, budget uint32) []byte {
	get := func(b []byte, idx uint32) []byte { return wasmbin.AppendU32(append(b, opGlobalGet), idx) }
	set := func(b []byte, idx uint32) []byte { return wasmbin.AppendU32(append(b, opGlobalSet), idx) }
	b := get(nil, budget)
	b = append(b, opI32Const, 0x01, 0x6b) // i32.sub
	b = set(b, budget)
	b = get(b, budget)
	b = append(b, opI32Const, 0x00, 0x4c, 0x04, 0x40) // i32.le_s, if
	b = append(b, opI32Const, 0x00, 0x40, 0x00, 0x1a) // memory.grow 0, drop
	b = get(b, flag)
	b = append(b, 0x04, 0x40, 0x00, 0x0b) // if unreachable end
	b = wasmbin.AppendS32(append(b, opI32Const), checkBudget)
	b = set(b, budget)
	return append(b, 0x0b)
}

// The prefixed opcodes. wazero reads the sub-opcode after a prefix as one
// byte, where the binary format has a LEB128 number; the rewrite's decoder
// reads the number. The two agree when the number is written in one byte
// (below 0x80), and for SIMD's opcodes 128-255 written in two, the second
// 0x01 (which wazero then reads as a nop). Any other encoding would have
// the two decoders read different instructions from there on, and a loop
// the rewrite does not see would get no check: checkPrefixed refuses it.
const (
	opGCPrefix     = 0xfb
	opMiscPrefix   = 0xfc
	opSIMDPrefix   = 0xfd
	opAtomicPrefix = 0xfe
)

// bulkOps are the 0xfc sub-opcodes that fill or copy memory or a table:
// memory.init, memory.copy, memory.fill, table.init, table.copy,
// table.fill.
var bulkOps = map[byte]bool{8: true, 10: true, 11: true, 12: true, 14: true, 17: true}

// checkPrefixed refuses a prefixed instruction at code[at] whose
// sub-opcode wazero would read otherwise than the rewrite.
func checkPrefixed(code []byte, at int) error {
	switch code[at] {
	case opGCPrefix, opMiscPrefix, opSIMDPrefix, opAtomicPrefix:
	default:
		return nil
	}
	if at+1 >= len(code) {
		return nil // SkipInstr reports the cut
	}
	if b := code[at+1]; b < 0x80 {
		return nil
	}
	if code[at] == opSIMDPrefix && at+2 < len(code) && code[at+2] == 0x01 {
		return nil
	}
	return fmt.Errorf("opcode 0x%x with its sub-opcode encoded as wazero does not read it", code[at])
}

// Reference types that name a type, (ref null t) and (ref t), written
// 0x63 and 0x64 and a type index. wazero v1.12.0's validator takes them in
// locals and in a typed select, but its compiler skips only two bytes
// after `select`, so that `1c 01 63 03` is a select to the validator and
// to the rewrite, and a select followed by a loop to the compiler: a loop
// the rewrite never saw, with no check, which no deadline could stop and
// which would hang the host at its next garbage collection (another
// index makes the compiler panic). Typed function references are not a
// feature the engine enables, so code that uses them is refused.
const (
	refNullType = 0x63
	refType     = 0x64
)

var errTypedRef = errors.New("a reference type naming a type (0x63/0x64), which wazero v1.12.0 compiles otherwise than it validates")

// checkLocalTypes refuses local declarations of a reference type naming
// a type.
func checkLocalTypes(decl []byte) error {
	r := wasmbin.NewReader(decl)
	for range r.Count() {
		r.U32()
		if t := r.ValType(); len(t) > 0 && (t[0] == refNullType || t[0] == refType) {
			return errTypedRef
		}
	}
	return r.Err()
}

// checkTypedRef refuses the instruction in code[at:end] if it is a typed
// select or a block, loop, if, try or try_table whose type is a
// reference type naming a type, in whatever encoding wazero decodes as
// one (a block type is an s33: e3 7f is 0x63 too).
func checkTypedRef(code []byte, at, end int) error {
	switch code[at] {
	case 0x1c: // select t*
		r := wasmbin.NewReader(code[at+1 : end])
		for range r.Count() {
			if t := r.ValType(); len(t) > 0 && (t[0] == refNullType || t[0] == refType) {
				return errTypedRef
			}
		}
	case 0x02, 0x03, 0x04, 0x06, 0x1f:
		if wasmbin.NewReader(code[at+1 : end]).BlockType() {
			return errTypedRef
		}
	}
	return nil
}

// rewriteCode returns the code section sec with a check at the start of
// every body and of every loop, and the budget spent after every bulk
// memory or table operation; with a lazy table's plan, with the guard
// before every indirect call and fill's body appended, or errTableUsed.
func rewriteCode(sec wasmbin.Section, flag, budget uint32, lazy *lazyTable) ([]byte, error) {
	check := interruptCheck(flag, budget)
	// spend empties the budget: `i32.const 0; global.set $budget`.
	spend := wasmbin.AppendU32([]byte{opI32Const, 0x00, opGlobalSet}, budget)
	r := sec.Reader()
	// Every body takes at least one byte, so Count refuses a count beyond
	// the section's length: nothing is sized from a lie.
	count := r.Count()
	if err := r.Err(); err != nil {
		return nil, err
	}
	out := make([]byte, 0, len(sec.Content)+len(sec.Content)/8+int(count)*(len(check)+5))
	var extra [][]byte
	if lazy != nil {
		if int(count) != len(lazy.params) {
			return nil, errTableUsed // wazero's to refuse
		}
		extra = [][]byte{lazy.fillBody()}
	}
	out = wasmbin.AppendU32(out, count+uint32(len(extra)))
	var body, guard []byte
	for fn := range count {
		size := r.U32()
		in := r.Bytes(int(size))
		if err := r.Err(); err != nil {
			return nil, err
		}
		br := wasmbin.NewReader(in)
		locals := br.Locals()
		if err := br.Err(); err != nil {
			return nil, err
		}
		decl := in[:br.Pos()]
		if err := checkLocalTypes(decl); err != nil {
			return nil, fmt.Errorf("function body %d: %w", fn, err)
		}
		// The body is written after its local declarations, which the
		// guard, if any, adds to.
		body = append(body[:0], check...)
		guard = guard[:0]
		guards := 0
		var allLocals uint64
		if lazy != nil {
			allLocals = uint64(lazy.params[fn]) + locals
		}
		from := br.Pos()
		for !br.Done() {
			at := br.Pos()
			op := in[at]
			if err := checkPrefixed(in, at); err != nil {
				return nil, fmt.Errorf("%w: function body %d: %v", errMalformed, fn, err)
			}
			if err := br.SkipInstr(); err != nil {
				return nil, err
			}
			if err := checkTypedRef(in, at, br.Pos()); err != nil {
				return nil, fmt.Errorf("function body %d: %w", fn, err)
			}
			if lazy != nil {
				if err := lazy.checkInstr(in, at, br.Pos(), allLocals); err != nil {
					if err == errTableUsed {
						return nil, err
					}
					return nil, fmt.Errorf("function body %d: %w", fn, err)
				}
			}
			switch {
			case lazy != nil && (op == opCallIndirect || op == opReturnCallIndirect):
				if guards++; guards > maxGuards {
					return nil, errTableUsed
				}
				if len(guard) == 0 {
					if allLocals >= 1<<31 {
						return nil, errTableUsed // wazero's to refuse
					}
					guard = lazy.guard(uint32(allLocals))
				}
				body = append(body, in[from:at]...)
				body = append(body, guard...)
				from = at
			case op == opLoop:
				body = append(body, in[from:br.Pos()]...)
				body = append(body, check...)
				from = br.Pos()
			case op == opGlobalGet, op == opGlobalSet:
				ir := wasmbin.NewReader(in[at+1 : br.Pos()])
				if idx := ir.U32(); idx >= flag {
					return nil, fmt.Errorf("%w: function body %d: global index %d out of range", errMalformed, fn, idx)
				}
			case op == opMiscPrefix && bulkOps[in[at+1]]:
				// A bulk operation runs as one native loop, as long as
				// memory, with no way out to Go: the next check goes out.
				body = append(body, in[from:br.Pos()]...)
				body = append(body, spend...)
				from = br.Pos()
			}
		}
		body = append(body, in[from:]...)
		if len(guard) > 0 {
			decl = withGuardLocal(decl)
		}
		out = wasmbin.AppendU32(out, uint32(len(decl)+len(body)))
		out = append(out, decl...)
		out = append(out, body...)
	}
	if !r.Done() {
		r.Fail("bytes after the last function body")
		return nil, r.Err()
	}
	for _, b := range extra {
		out = wasmbin.AppendU32(out, uint32(len(b)))
		out = append(out, b...)
	}
	return out, nil
}
