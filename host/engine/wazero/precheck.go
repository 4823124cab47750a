package wazero

import (
	"fmt"

	"github.com/blockhost/blockhost/host/engine/internal/wasmbin"
)

// precheck rejects modules whose declared counts cannot be true before
// wazero sees them. wazero v1.12 sizes its tables from the counts a module
// declares before checking them against the bytes that follow, so a
// 15-byte module declaring 2^32−1 function bodies makes it allocate until
// the process dies with a fatal, unrecoverable out-of-memory error. Every
// vector element takes at least one byte, so a count larger than the bytes
// left is a lie (wasmbin.Reader.Count refuses it); locals are capped at
// maxLocals per function, the limit other engines apply.
func precheck(wasm []byte) error {
	return wasmbin.EachSection(wasm, func(sec wasmbin.Section) error {
		switch id := sec.ID; {
		case id >= 1 && id <= 11 && id != wasmbin.SectionStart: // sections that start with a vector
			r := sec.Reader()
			r.Count()
			if err := r.Err(); err != nil {
				return fmt.Errorf("section %d: %w", id, err)
			}
			if id == wasmbin.SectionCode {
				return checkLocals(sec)
			}
		case id == wasmbin.SectionCustom:
			return checkNameSection(sec)
		}
		return nil
	})
}

// maxLocals caps the locals of one function.
const maxLocals = 50000

func checkLocals(sec wasmbin.Section) error {
	r := sec.Reader()
	for i := range r.Count() {
		body := wasmbin.NewReader(r.Bytes(int(r.U32())))
		if err := r.Err(); err != nil {
			return fmt.Errorf("code section: body %d: %w", i, err)
		}
		n := body.Locals()
		if err := body.Err(); err != nil {
			return fmt.Errorf("code section: body %d: bad local declarations: %w", i, err)
		}
		if n > maxLocals {
			return fmt.Errorf("code section: body %d declares more than %d locals", i, maxLocals)
		}
	}
	return nil
}

// checkNameSection checks the counts of the "name" custom section, which
// wazero decodes; other custom sections are skipped.
func checkNameSection(sec wasmbin.Section) error {
	r := sec.Reader()
	if name := r.Name(); r.Err() != nil || name != "name" {
		if err := r.Err(); err != nil {
			return fmt.Errorf("custom section: bad name: %w", err)
		}
		return nil
	}
	for !r.Done() {
		sub := r.Byte()
		size := r.U32()
		content := wasmbin.Section{ID: sub, Offset: sec.Offset + r.Pos()}
		content.Content = r.Bytes(int(size))
		if err := r.Err(); err != nil {
			return fmt.Errorf("name section: bad subsection size: %w", err)
		}
		if sub != 1 && sub != 2 {
			continue
		}
		// The count of a name map (1: functions), or of an indirect name
		// map and of each of its name maps (2: locals).
		c := content.Reader()
		n := c.Count()
		if sub == 2 {
			for range n {
				c.U32()
				for range c.Count() {
					c.U32()
					c.Name()
				}
			}
		}
		if err := c.Err(); err != nil {
			return fmt.Errorf("name subsection %d: %w", sub, err)
		}
	}
	return r.Err()
}
