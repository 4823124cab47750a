//go:build wasip1

package sdk

import (
	crand "crypto/rand"
	"encoding/binary"
	"math/rand"
	_ "unsafe" // for go:linkname
)

// A block built with -buildmode=c-shared is a reactor (docs/abi.md §2):
// the host calls _initialize, which the Go toolchain provides and which
// runs the Go runtime's start-up and every package's init, and then
// blockhost_run, below, once per step. blockhost_run runs the block's own
// main, so the same main package — main calling Run or RunJSON — is a
// command when built plainly and a reactor when built with
// -buildmode=c-shared, and the block's author writes nothing for either.
// In a command build the export is present but never called: the host
// calls only _start when a module has one.

// mainMain is the block's main.main. The toolchain does not call it in a
// c-shared build; blockhost_run does.
//
//go:linkname mainMain main.main
func mainMain()

// run is the reactor's entry point, called once per step in a fresh
// instance.
//
//go:wasmexport blockhost_run
func run() {
	reseed()
	mainMain()
}

// snapshotOK is the marker of docs/abi.md §2.1: the host may run this
// module's _initialize once and start every step from the state it left.
// What makes that safe for a Go block built with this package: the Go
// runtime's and packages' initialisation changes no table, reads no input,
// and whatever random state it draws is re-seeded by reseed where Go allows
// it (docs/security.md, "Snapshots").
//
//go:wasmexport blockhost_snapshot
func snapshotOK() {}

// reseed gives math/rand's global source a seed of this instance's own,
// from the host's secure random source, before the block runs. A host
// that starts steps from a snapshot taken after initialisation would
// otherwise start every step with the source the snapshot captured.
//
// It takes effect only when the main package carries
// //go:debug randseednop=0 (blockhost init's template does): since Go 1.24
// rand.Seed is otherwise a no-op and the global source is the runtime's,
// which no package can re-seed.
func reseed() {
	var b [8]byte
	if _, err := crand.Read(b[:]); err != nil {
		return // the global source keeps the seed it had; nothing is unsafe about it
	}
	//lint:ignore SA1019 re-seeding the global source is the point (see above).
	rand.Seed(int64(binary.LittleEndian.Uint64(b[:])))
}
