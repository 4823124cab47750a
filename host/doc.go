// Package host is the blockhost runtime: it loads blocks — WebAssembly
// modules speaking ABI v1 (docs/abi.md) or plain WASI preview1 commands —
// and runs steps of them, each in a fresh instance, with nothing granted
// but what the step's configuration grants.
//
// Guarantees:
//   - Block.Run returns exactly one result per call, with status success,
//     error, timeout or cancelled; guest misbehaviour (traps, stack
//     overflow, memory exhaustion, endless loops) never crashes the host.
//   - Timeouts and cancellation interrupt the module wherever it is; the
//     status is decided from the recorded cause of the step's end
//     (context.Cause), so a cancelled step is never reported as a timeout
//     or the reverse.
//   - Modules are validated when loaded: the ABI version, every import and
//     the entry point are checked before any guest code runs.
//   - A module compiled once is reused for every step in the process.
package host
