package job

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/blockhost/blockhost/host/sign"
	"github.com/blockhost/blockhost/internal/testwasm"
)

// TestLoadModule_signedDigest: the module is checked against the signed
// digest from the bytes loaded, so a module swapped between verification
// and loading is refused too; a built-in block is checked by name.
func TestLoadModule_signedDigest(t *testing.T) {
	svc, err := New(NewConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Close(context.Background())
	wasm := testwasm.WAT(t, filepath.Join("..", "testdata", "echo.wat"))
	path := filepath.Join(t.TempDir(), "echo.wasm")
	if err := os.WriteFile(path, wasm, 0o644); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := svc.loadModule(ctx, path, "", "echo", "", "sha256:"+strings.Repeat("0", 64), ""); !errors.Is(err, sign.ErrModuleChanged) {
		t.Errorf("another digest: %v", err)
	}
	if _, err := svc.loadModule(ctx, "jobtest.upper", "", "x", "", "builtin:jobtest.wait", ""); !errors.Is(err, sign.ErrModuleChanged) {
		t.Errorf("another built-in block: %v", err)
	}
	if _, err := svc.loadModule(ctx, path, "", "echo", "", "", ""); err != nil {
		t.Errorf("unsigned, no digest to check: %v", err)
	}
}
