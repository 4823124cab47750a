// Package capability is the interface between the host and the
// capabilities a step may be granted: HTTP (host/httpcap), directories
// (host/fscap) and whatever comes next. The host knows capabilities only
// through this package, as database/sql knows drivers: a capability
// package implements Capability and calls Register from its init, and the
// host opens every registered capability for every step, routes each of
// its host functions to the step's State, and records what the
// capability reports through Step.Audit.
//
// The package guarantees that:
//   - a capability's host functions are called only while its step runs,
//     by the one goroutine running the guest, with the State its Open
//     returned for that step; the host checks the step's end and counts the
//     call before the function runs, and ends the run instead of returning
//     to the guest once the step is over (docs/abi.md §4);
//   - every host function is an ABI v1 function of the capability's own
//     name (abi.Functions), declared by exactly one capability: Register
//     panics otherwise, at init, before any step runs;
//   - every *_last_error function behaves the same (LastErrorFunc): the
//     detail of the capability's last failed call, not_found when none has
//     failed, whatever buffer the guest passes;
//   - a State is closed exactly once, after the guest is done, in the
//     reverse order of opening.
package capability
