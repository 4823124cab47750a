package conformance_test

import (
	"testing"

	"github.com/blockhost/blockhost/host/engine"
	"github.com/blockhost/blockhost/internal/conformance"
)

// TestConformance runs the suite against every registered engine.
func TestConformance(t *testing.T) {
	names := engine.Names()
	if len(names) < 2 {
		t.Fatalf("engines registered: %v; want wazero and wasmtime at least", names)
	}
	for _, name := range names {
		t.Run(name, func(t *testing.T) { conformance.Run(t, name) })
	}
}

// TestEngines_agree requires identical results from every engine.
func TestEngines_agree(t *testing.T) {
	conformance.Agree(t, engine.Names())
}

// TestWASITestsuite runs the public WASI preview1 test suite on every
// engine, through host.Runtime and through the blockhost command.
func TestWASITestsuite(t *testing.T) {
	conformance.WASISuiteDir(t)
	var bin string
	if !testing.Short() {
		bin = conformance.CLI(t)
	}
	for _, name := range engine.Names() {
		t.Run(name, func(t *testing.T) { conformance.RunWASISuite(t, name, bin) })
	}
}
