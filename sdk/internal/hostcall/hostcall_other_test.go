//go:build !wasip1

package hostcall

import (
	"testing"

	"github.com/blockhost/blockhost/abi"
)

type stubHost struct{ noHost }

func (stubHost) Check() abi.Result { return abi.ResultTimeout }

func TestInstall_restoresPrevious(t *testing.T) {
	if Available() {
		t.Fatal("a host is installed before any Install")
	}
	if r := Check(); r != abi.ResultUnavailable {
		t.Fatalf("Check without a host = %v, want unavailable", r)
	}
	restore := Install(stubHost{})
	if !Available() {
		t.Fatal("Available is false after Install")
	}
	if r := Check(); r != abi.ResultTimeout {
		t.Fatalf("Check with the stub = %v, want timeout", r)
	}
	restore()
	if Available() {
		t.Fatal("Available is true after restore")
	}
	if r := Check(); r != abi.ResultUnavailable {
		t.Fatalf("Check after restore = %v, want unavailable", r)
	}
}
