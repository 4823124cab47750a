// Package hostcall is the seam between the sdk and the blockhost host: one
// Go function per host function of ABI v1, taking Go slices and strings
// instead of guest pointers and returning the host's raw result.
//
// The build tag picks the implementation. Under GOOS=wasip1 each function
// is a thin wrapper around a //go:wasmimport of module "blockhost", with no
// interface call or lookup in between, so the guest pays nothing for the
// seam. Everywhere else the functions forward to a Host installed with
// Install — the in-process fake host of package sdktest — so the same sdk
// code paths run in native unit tests.
//
// Results are returned as the host gave them, unknown values included; the
// sdk decides what they mean.
package hostcall
