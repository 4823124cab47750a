package wazero

import (
	"errors"
	"fmt"
)

// precheck rejects modules whose declared counts cannot be true before
// wazero sees them. wazero v1.12 sizes its tables from the counts a module
// declares before checking them against the bytes that follow, so a
// 15-byte module declaring 2^32−1 function bodies makes it allocate until
// the process dies with a fatal, unrecoverable out-of-memory error. Every
// vector element takes at least one byte, so a count larger than the bytes
// left is a lie; locals are capped at maxLocals per function, the limit
// other engines apply.
func precheck(wasm []byte) error {
	const headerLen = 8
	if len(wasm) < headerLen {
		return errors.New("module is shorter than the 8-byte header")
	}
	pos := headerLen
	for pos < len(wasm) {
		id := wasm[pos]
		size, n, err := readU32(wasm[pos+1:])
		if err != nil {
			return fmt.Errorf("section at offset %d: bad size", pos)
		}
		start := pos + 1 + n
		end := start + int(size)
		if end > len(wasm) || end < start {
			return fmt.Errorf("section %d at offset %d: size %d runs past the end of the module", id, pos, size)
		}
		sec := wasm[start:end]
		switch {
		case id >= 1 && id <= 11 && id != 8: // sections that start with a vector
			if err := checkCount(sec, "section", id); err != nil {
				return err
			}
			if id == 10 {
				if err := checkLocals(sec); err != nil {
					return err
				}
			}
		case id == 0:
			if err := checkNameSection(sec); err != nil {
				return err
			}
		}
		pos = end
	}
	return nil
}

// maxLocals caps the locals of one function.
const maxLocals = 50000

func checkCount(b []byte, what string, id byte) error {
	count, n, err := readU32(b)
	if err != nil {
		return fmt.Errorf("%s %d: bad count", what, id)
	}
	if uint64(count) > uint64(len(b)-n) {
		return fmt.Errorf("%s %d: declares %d entries in %d bytes", what, id, count, len(b)-n)
	}
	return nil
}

func checkLocals(sec []byte) error {
	count, pos, _ := readU32(sec)
	for i := uint32(0); i < count; i++ {
		size, n, err := readU32(sec[pos:])
		if err != nil {
			return errors.New("code section: bad body size")
		}
		bodyStart := pos + n
		bodyEnd := bodyStart + int(size)
		if bodyEnd > len(sec) || bodyEnd < bodyStart {
			return fmt.Errorf("code section: body %d runs past the section", i)
		}
		body := sec[bodyStart:bodyEnd]
		groups, p, err := readU32(body)
		if err != nil || uint64(groups) > uint64(len(body)) {
			return fmt.Errorf("code section: body %d: bad local declarations", i)
		}
		var total uint64
		for range groups {
			k, m, err := readU32(body[p:])
			if err != nil {
				return fmt.Errorf("code section: body %d: bad local declarations", i)
			}
			total += uint64(k)
			if total > maxLocals {
				return fmt.Errorf("code section: body %d declares more than %d locals", i, maxLocals)
			}
			p += m + 1 // the count, then a value type of at least one byte
			if p > len(body) {
				return fmt.Errorf("code section: body %d: bad local declarations", i)
			}
		}
		pos = bodyEnd
	}
	return nil
}

// checkNameSection checks the counts of the "name" custom section, which
// wazero decodes; other custom sections are skipped.
func checkNameSection(sec []byte) error {
	nameLen, n, err := readU32(sec)
	if err != nil || uint64(nameLen) > uint64(len(sec)-n) {
		return errors.New("custom section: bad name")
	}
	if string(sec[n:n+int(nameLen)]) != "name" {
		return nil
	}
	b := sec[n+int(nameLen):]
	for len(b) > 0 {
		sub := b[0]
		size, n, err := readU32(b[1:])
		if err != nil || uint64(size) > uint64(len(b)-1-n) {
			return errors.New("name section: bad subsection size")
		}
		content := b[1+n : 1+n+int(size)]
		if sub == 1 || sub == 2 {
			if err := checkCount(content, "name subsection", sub); err != nil {
				return err
			}
		}
		if sub == 2 {
			// an indirect name map: each entry is an index and a name map
			count, p, _ := readU32(content)
			for range count {
				_, m, err := readU32(content[p:])
				if err != nil {
					return errors.New("name section: bad local names")
				}
				p += m
				if err := checkCount(content[p:], "name subsection", sub); err != nil {
					return err
				}
				inner, m2, _ := readU32(content[p:])
				p += m2
				for range inner {
					_, m, err := readU32(content[p:])
					if err != nil {
						return errors.New("name section: bad local names")
					}
					p += m
					l, m, err := readU32(content[p:])
					if err != nil || uint64(l) > uint64(len(content)-p-m) {
						return errors.New("name section: bad local name")
					}
					p += m + int(l)
				}
			}
		}
		b = b[1+n+int(size):]
	}
	return nil
}
