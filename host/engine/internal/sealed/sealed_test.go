package sealed

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"runtime"
	"testing"
)

// TestFile: the file holds the bytes, and nothing can write to it, nor
// through a new open of /proc/self/fd.
func TestFile(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("sealed memory files are Linux's")
	}
	want := bytes.Repeat([]byte("sealed"), 5000)
	fd, err := File("blockhost-test", want)
	if errors.Is(err, ErrUnavailable) && os.Getenv("CI") != "true" {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	f := os.NewFile(uintptr(fd), "sealed")
	defer f.Close()
	got := make([]byte, len(want)+1)
	if n, _ := f.ReadAt(got, 0); n != len(want) || !bytes.Equal(got[:n], want) {
		t.Fatalf("read back %d bytes, want %d equal bytes", n, len(want))
	}
	if _, err := f.WriteAt([]byte("x"), 0); err == nil {
		t.Error("wrote to the sealed file through its descriptor")
	}
	if err := f.Truncate(1); err == nil {
		t.Error("shrank the sealed file")
	}
	g, err := os.OpenFile(fmt.Sprintf("/proc/self/fd/%d", fd), os.O_WRONLY, 0)
	if err == nil {
		_, err = g.WriteAt([]byte("x"), 0)
		g.Close()
	}
	if err == nil {
		t.Error("wrote to the sealed file through /proc/self/fd")
	}
}
