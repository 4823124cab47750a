package wazero

import "github.com/blockhost/blockhost/host/engine/internal/wasmbin"

// Instantiation is CPU work with no guest code in it (memory, data, tables,
// globals: milliseconds for a Go module), except the module's start
// function, which wazero runs inside InstantiateModule. The engine limits
// how many instantiations run at once (Engine.slots), and a guest must not
// be able to hold one of those slots: exportStart therefore moves the start
// function out of instantiation. It removes the start section and exports
// the function under startExport; Run calls it right after instantiating,
// before the entry points, which is when the start section would have run
// it, with the same interruption, traps and exits.

// startExport names the export exportStart adds; the engine hides it.
const startExport = "blockhost:start"

// exportStart returns wasm with its start function exported instead of
// started, and whether there was one; wasm unchanged when there was none,
// when the name is taken, or, with an error, when it cannot be decoded.
func exportStart(wasm []byte) ([]byte, bool, error) {
	m, err := wasmbin.Parse(wasm)
	if err != nil {
		return wasm, false, err
	}
	si := m.Index(wasmbin.SectionStart)
	if si < 0 {
		return wasm, false, nil
	}
	r := m.Sections[si].Reader()
	fn := r.U32()
	if err := r.Err(); err != nil {
		return wasm, false, err
	}
	if ei := m.Index(wasmbin.SectionExport); ei >= 0 {
		exports, err := wasmbin.ReadVec(m.Sections[ei], (*wasmbin.Reader).Export)
		if err != nil {
			return wasm, false, err
		}
		for _, e := range exports {
			if e.Name == startExport {
				return wasm, false, nil
			}
		}
	}
	m.Sections = append(m.Sections[:si], m.Sections[si+1:]...)
	entry := wasmbin.AppendExport(nil, wasmbin.Export{Name: startExport, Kind: wasmbin.KindFunc, Index: fn})
	if err := m.AppendEntries(wasmbin.SectionExport, 1, entry); err != nil {
		return wasm, false, err
	}
	return m.Encode(), true, nil
}
