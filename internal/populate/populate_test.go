package populate

import (
	"bytes"
	"os"
	"path/filepath"
	"runtime"
	"syscall"
	"testing"
	"unsafe"
)

// TestReadFile: the bytes read are the file's, for a file of a few pages,
// of a few bytes, empty, and one that is not a regular file.
func TestReadFile(t *testing.T) {
	dir := t.TempDir()
	for _, size := range []int{0, 5, 1 << 20} {
		want := bytes.Repeat([]byte{0xa5, 1, 2}, size/3+1)[:size]
		path := filepath.Join(dir, "f")
		if err := os.WriteFile(path, want, 0o600); err != nil {
			t.Fatal(err)
		}
		got, err := ReadFile(path)
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("%d bytes: read %d bytes (equal %v), %v", size, len(got), bytes.Equal(got, want), err)
		}
	}
	if got, err := ReadFile(os.DevNull); err != nil || len(got) != 0 {
		t.Errorf("%s: %q, %v", os.DevNull, got, err)
	}
	if _, err := ReadFile(filepath.Join(dir, "missing")); !os.IsNotExist(err) {
		t.Errorf("a missing file: %v, want not-exist", err)
	}
}

// TestBytes: the whole pages of a large slice are resident as soon as it
// is made, before anything is written to it.
func TestBytes(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("pages are populated on Linux only")
	}
	b := Bytes(64 << 20)
	page := os.Getpagesize()
	start := uintptr(unsafe.Pointer(&b[0]))
	skip := int((uintptr(page) - start%uintptr(page)) % uintptr(page))
	whole := b[skip : skip+(len(b)-skip)/page*page]
	vec := make([]byte, len(whole)/page)
	if _, _, errno := syscall.Syscall(syscall.SYS_MINCORE, uintptr(unsafe.Pointer(&whole[0])), uintptr(len(whole)), uintptr(unsafe.Pointer(&vec[0]))); errno != 0 {
		t.Skipf("mincore: %v", errno)
	}
	absent := 0
	for _, v := range vec {
		if v&1 == 0 {
			absent++
		}
	}
	if absent != 0 {
		t.Errorf("%d of %d pages not resident", absent, len(vec))
	}
}
