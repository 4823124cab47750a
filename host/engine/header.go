package engine

import (
	"encoding/binary"
	"fmt"
)

// wasmMagic and wasmVersion open every core WebAssembly module.
const (
	wasmMagic   = "\x00asm"
	wasmVersion = 1
)

// CheckHeader returns a *FormatError unless wasm starts with the header of
// a core WebAssembly module, binary version 1. Engines call it before
// anything else, so that a file that is not WebAssembly at all (a script,
// a text-format module, a native binary) is named as such instead of being
// decoded as sections it does not have.
func CheckHeader(wasm []byte) error {
	switch {
	case len(wasm) == 0:
		return &FormatError{Reason: `not a WebAssembly module (empty file)`}
	case len(wasm) < 4 || string(wasm[:4]) != wasmMagic:
		if len(wasm) < 4 && string(wasm) == wasmMagic[:len(wasm)] {
			return &FormatError{Reason: fmt.Sprintf(`not a WebAssembly module (truncated header: %d bytes)`, len(wasm))}
		}
		if looksLikeText(wasm) {
			return &FormatError{Reason: `not a WebAssembly module (no \0asm header; the text format must be compiled to binary first, e.g. with wat2wasm)`}
		}
		return &FormatError{Reason: `not a WebAssembly module (no \0asm header)`}
	case len(wasm) < 8:
		return &FormatError{Reason: fmt.Sprintf(`not a WebAssembly module (truncated header: %d bytes)`, len(wasm))}
	}
	version := binary.LittleEndian.Uint16(wasm[4:6])
	layer := binary.LittleEndian.Uint16(wasm[6:8])
	switch {
	case layer == 1:
		return &FormatError{Reason: fmt.Sprintf("a WebAssembly component (binary version %#x, layer 1), not a core module: blockhost runs core modules", version)}
	case version != wasmVersion || layer != 0:
		return &FormatError{Reason: fmt.Sprintf("unsupported WebAssembly binary version %d (header bytes % x; this host reads version %d)", binary.LittleEndian.Uint32(wasm[4:8]), wasm[4:8], wasmVersion)}
	}
	return nil
}

// looksLikeText reports whether wasm opens like the WebAssembly text
// format: "(module" or a comment, after white space.
func looksLikeText(wasm []byte) bool {
	i := 0
	for i < len(wasm) && (wasm[i] == ' ' || wasm[i] == '\t' || wasm[i] == '\n' || wasm[i] == '\r') {
		i++
	}
	rest := string(wasm[i:min(len(wasm), i+8)])
	return len(rest) >= 7 && rest[:7] == "(module" || len(rest) >= 2 && (rest[:2] == ";;" || rest[:2] == "(;")
}
