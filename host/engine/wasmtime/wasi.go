//go:build cgo

package wasmtime

// trapInterrupted is the trap with which a host function ends a run whose
// context has ended (hostFunc); classify reports the run as interrupted.
const trapInterrupted = "blockhost: execution interrupted"
