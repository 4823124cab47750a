//go:build !wasip1

package sdk_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"testing/fstest"

	"github.com/blockhost/blockhost/abi"
	"github.com/blockhost/blockhost/sdk"
	"github.com/blockhost/blockhost/sdk/sdktest"
)

// fsStep runs fn as a step with dir granted at /data.
func fsStep(t *testing.T, dir string, ro bool, fn func() error) sdktest.Result {
	t.Helper()
	cfg := sdktest.Config{FS: []sdktest.Dir{{GuestPath: "/data", HostDir: dir, ReadWrite: !ro}}}
	return cfg.Call(t, func(context.Context, []byte) ([]byte, error) { return nil, fn() }, nil)
}

func TestFS_readWrite(t *testing.T) {
	dir := t.TempDir()
	res := fsStep(t, dir, false, func() error {
		if err := sdk.MkdirAll("/data/a/b"); err != nil {
			return err
		}
		if err := sdk.WriteFile("data/a/b/x.txt", []byte("hello")); err != nil {
			return err
		}
		if err := sdk.AppendFile("/data/a/b/x.txt", []byte(", world")); err != nil {
			return err
		}
		if err := sdk.CreateFile("/data/a/b/x.txt", nil); !errors.Is(err, fs.ErrExist) || !errors.Is(err, sdk.ErrExists) {
			return fmt.Errorf("CreateFile over a file: %v", err)
		}
		b, err := sdk.ReadFile("/data/a/b/x.txt")
		if err != nil || string(b) != "hello, world" {
			return fmt.Errorf("ReadFile = %q, %v", b, err)
		}
		if err := sdk.Rename("/data/a/b/x.txt", "/data/y.txt"); err != nil {
			return err
		}
		info, err := sdk.Stat("/data/y.txt")
		if err != nil || info.Size() != 12 || info.IsDir() || info.Name() != "y.txt" {
			return fmt.Errorf("Stat = %v, %v", info, err)
		}
		ents, err := sdk.ReadDir("/data")
		if err != nil || len(ents) != 2 || ents[0].Name() != "a" || !ents[0].IsDir() || ents[1].Name() != "y.txt" {
			return fmt.Errorf("ReadDir = %v, %v", ents, err)
		}
		if _, err := sdk.ReadFile("/data/missing"); !errors.Is(err, fs.ErrNotExist) || !errors.Is(err, sdk.ErrNotFound) {
			return fmt.Errorf("ReadFile of a missing file: %v", err)
		}
		if _, err := sdk.ReadFile("/data/../etc/passwd"); !errors.Is(err, fs.ErrPermission) || !errors.Is(err, sdk.ErrDenied) {
			return fmt.Errorf("ReadFile with ..: %v", err)
		}
		return sdk.Remove("/data/a/b")
	})
	if res.Status != abi.StatusSuccess {
		t.Fatalf("%s %v", res.Status, res.Err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "y.txt")); string(b) != "hello, world" {
		t.Fatalf("y.txt = %q", b)
	}
}

// TestFS_errorIsTheStepsError: a handler that returns a refused write as
// it is ends the step with the host's code.
func TestFS_errorIsTheStepsError(t *testing.T) {
	dir := t.TempDir()
	res := fsStep(t, dir, true, func() error {
		err := sdk.WriteFile("/data/x", []byte("x"))
		var fe *sdk.FSError
		if !errors.As(err, &fe) || fe.Op != "write" || fe.Path != "/data/x" || fe.Result != abi.ResultDenied {
			return fmt.Errorf("unexpected %#v", err)
		}
		return err
	})
	if res.Status != abi.StatusError || res.Err.Code != abi.CodePermissionDenied || res.Err.Class != abi.ClassPermanent {
		t.Fatalf("%s %+v", res.Status, res.Err)
	}
	// No grant at all: denied.
	res = sdktest.Call(t, func(context.Context, []byte) ([]byte, error) {
		_, err := sdk.ReadFile("/data/x")
		return nil, err
	}, nil)
	if res.Err == nil || res.Err.Code != abi.CodePermissionDenied {
		t.Fatalf("read with no grant: %+v", res.Err)
	}
}

// TestFS_fstest checks sdk.FS against testing/fstest's rules for an
// fs.FS.
func TestFS_fstest(t *testing.T) {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "sub"), 0o755)
	os.WriteFile(filepath.Join(dir, "a.txt"), []byte("aaa"), 0o644)
	os.WriteFile(filepath.Join(dir, "sub", "b.txt"), []byte("bbbb"), 0o644)
	res := fsStep(t, dir, true, func() error {
		return fstest.TestFS(sdk.FS(), "data/a.txt", "data/sub/b.txt")
	})
	if res.Status != abi.StatusSuccess {
		t.Fatalf("%s %v", res.Status, res.Err)
	}
}

// A block reads through sdk.FS and writes with sdk.WriteFile; in a test,
// sdktest grants it a directory of the test's.
func ExampleFS() {
	dir, _ := os.MkdirTemp("", "example")
	defer os.RemoveAll(dir)
	os.WriteFile(filepath.Join(dir, "in.txt"), []byte("data from the host"), 0o644)

	copyUpper := func(context.Context, []byte) ([]byte, error) {
		b, err := fs.ReadFile(sdk.FS(), "data/in.txt")
		if err != nil {
			return nil, err
		}
		return nil, sdk.WriteFile("/data/out.txt", []byte(fmt.Sprintf("%d bytes", len(b))))
	}
	cfg := sdktest.Config{FS: []sdktest.Dir{{GuestPath: "/data", HostDir: dir, ReadWrite: true}}}
	res := cfg.Call(nil, copyUpper, nil)
	out, _ := os.ReadFile(filepath.Join(dir, "out.txt"))
	fmt.Println(res.Status, string(out))
	// Output:
	// success 18 bytes
}

func TestFS_readLarge(t *testing.T) {
	dir := t.TempDir()
	want := make([]byte, 200<<10+7)
	for i := range want {
		want[i] = byte(i * 31)
	}
	os.WriteFile(filepath.Join(dir, "big"), want, 0o644)
	res := fsStep(t, dir, true, func() error {
		for _, read := range []func() ([]byte, error){
			func() ([]byte, error) { return sdk.ReadFile("/data/big") },
			func() ([]byte, error) { return fs.ReadFile(sdk.FS(), "data/big") },
			func() ([]byte, error) {
				f, err := sdk.FS().Open("data/big")
				if err != nil {
					return nil, err
				}
				defer f.Close()
				return io.ReadAll(f)
			},
		} {
			got, err := read()
			if err != nil || !bytes.Equal(got, want) {
				return fmt.Errorf("read %d bytes, %v", len(got), err)
			}
		}
		return nil
	})
	if res.Status != abi.StatusSuccess {
		t.Fatalf("%s %v", res.Status, res.Err)
	}
}
