// Package abi is the contract between the blockhost host and a block: the
// ABI version, the names of the host functions a block imports and of the
// functions it exports, the result codes host calls return, the step error
// codes and classes, and the wire form of a step's result.
//
// The package imports only the standard library and builds for
// GOOS=wasip1 GOARCH=wasm, so the host and every block share one definition
// of each name and number. docs/abi.md is the normative description; the
// constants here are its single source in Go.
package abi
