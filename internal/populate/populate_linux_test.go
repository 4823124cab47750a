package populate

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"unsafe"
)

// TestKept: from hugeFrom bytes on, a slice from Kept starts on a huge
// page boundary, its bytes are zero, and, where the kernel offers huge
// pages on request, the mapping holding it is eligible for them (the
// advice was given: "THPeligible: 1" in /proc/self/smaps). Below
// hugeFrom, it is an ordinary slice.
func TestKept(t *testing.T) {
	huge := hugePageSize()
	if huge == 0 {
		t.Skip("the kernel has no transparent huge pages")
	}
	mode, err := os.ReadFile("/sys/kernel/mm/transparent_hugepage/enabled")
	if err != nil {
		t.Skipf("transparent huge pages: %v", err)
	}
	b := Kept(hugeFrom + 12345)
	if len(b) != hugeFrom+12345 || cap(b) != len(b) {
		t.Fatalf("len %d cap %d, want both %d", len(b), cap(b), hugeFrom+12345)
	}
	if !bytes.Equal(b, make([]byte, len(b))) {
		t.Fatal("a new slice holds bytes other than zero")
	}
	addr := uintptr(unsafe.Pointer(&b[0]))
	if addr%uintptr(huge) != 0 {
		t.Errorf("a slice of %d bytes starts at %#x, not on a %d-byte huge page", len(b), addr, huge)
	}
	if s := string(mode); !strings.Contains(s, "[madvise]") && !strings.Contains(s, "[always]") {
		t.Logf("huge pages are %q here: eligibility not checked", strings.TrimSpace(s))
	} else if eligible, err := thpEligible(addr); err != nil {
		t.Skipf("smaps: %v", err)
	} else if !eligible {
		t.Errorf("the mapping holding the slice at %#x is not eligible for huge pages (huge pages %q)", addr, strings.TrimSpace(s))
	}
	if small := Kept(hugeFrom - 1); len(small) != hugeFrom-1 {
		t.Errorf("a slice of %d bytes has %d", hugeFrom-1, len(small))
	}
	// ReadFile reads into a slice from Kept.
	path := filepath.Join(t.TempDir(), "module")
	want := bytes.Repeat([]byte{7, 0, 1}, hugeFrom/3+2)
	if err := os.WriteFile(path, want, 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := ReadFile(path)
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("ReadFile: %d bytes (equal %v), %v", len(got), bytes.Equal(got, want), err)
	}
	if addr := uintptr(unsafe.Pointer(&got[0])); addr%uintptr(huge) != 0 {
		t.Errorf("ReadFile of %d bytes read into %#x, not a huge page", len(got), addr)
	}
}

// thpEligible reads the THPeligible field of the mapping holding addr
// from /proc/self/smaps.
func thpEligible(addr uintptr) (bool, error) {
	data, err := os.ReadFile("/proc/self/smaps")
	if err != nil {
		return false, err
	}
	in := false
	for _, line := range strings.Split(string(data), "\n") {
		fields := strings.Fields(line)
		if len(fields) == 0 {
			continue
		}
		if lo, hi, ok := strings.Cut(fields[0], "-"); ok && !strings.HasSuffix(fields[0], ":") {
			start, err1 := strconv.ParseUint(lo, 16, 64)
			end, err2 := strconv.ParseUint(hi, 16, 64)
			in = err1 == nil && err2 == nil && uint64(addr) >= start && uint64(addr) < end
			continue
		}
		if in && fields[0] == "THPeligible:" && len(fields) > 1 {
			return fields[1] == "1", nil
		}
	}
	return false, errors.New("no THPeligible field for the mapping")
}
