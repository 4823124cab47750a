//go:build wasip1

package sdk

// abiV1 is the version marker of docs/abi.md §3. The host only reads the
// export's name and never calls it; living here, it makes every module that
// imports sdk an ABI v1 block.
//
//go:wasmexport blockhost_abi_v1
func abiV1() {}
