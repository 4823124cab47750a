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

// TestKept: a slice from Kept whose huge pages are worth it starts on a
// huge page boundary, its bytes are zero, and, where the kernel offers
// huge pages on request, the mapping holding it is eligible for them (the
// advice was given: "THPeligible: 1" in /proc/self/smaps). ReadFile reads
// into such a slice.
func TestKept(t *testing.T) {
	huge := hugePageSize()
	if huge == 0 {
		t.Skip("the kernel has no transparent huge pages")
	}
	mode, err := os.ReadFile("/sys/kernel/mm/transparent_hugepage/enabled")
	if err != nil {
		t.Skipf("transparent huge pages: %v", err)
	}
	if !thpOnRequest(string(mode)) {
		t.Skipf("huge pages are %q here", strings.TrimSpace(string(mode)))
	}
	for _, n := range []int{2*huge - 12345, 2*huge + 100, 3 * huge} {
		b := Kept(n)
		if len(b) != n || cap(b) != n {
			t.Fatalf("len %d cap %d, want both %d", len(b), cap(b), n)
		}
		if !bytes.Equal(b, make([]byte, n)) {
			t.Fatal("a new slice holds bytes other than zero")
		}
		addr := uintptr(unsafe.Pointer(&b[0]))
		if addr%uintptr(huge) != 0 {
			t.Errorf("a slice of %d bytes starts at %#x, not on a %d-byte huge page", n, addr, huge)
		}
		if eligible, err := thpEligible(addr); err != nil {
			t.Skipf("smaps: %v", err)
		} else if !eligible {
			t.Errorf("the mapping holding the slice of %d bytes at %#x is not eligible for huge pages", n, addr)
		}
	}
	// ReadFile reads into a slice from Kept.
	path := filepath.Join(t.TempDir(), "module")
	want := bytes.Repeat([]byte{7, 0, 1}, huge)
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

// TestHugeSpan: what of a slice Kept puts in huge pages.
func TestHugeSpan(t *testing.T) {
	const huge = 2 << 20
	for _, c := range []struct{ n, want int }{
		{0, 0},
		{1<<20 + 4096, 0},        // rounding up would double it
		{huge - 1, huge},         // one byte short
		{3_857_808, 2 * huge},    // hello: 8.7% more
		{2*huge + 100, 2 * huge}, // rounding up would add half
		{3 * huge, 3 * huge},
	} {
		if got := hugeSpan(c.n, huge); got != c.want {
			t.Errorf("hugeSpan(%d) = %d, want %d", c.n, got, c.want)
		}
	}
	for setting, want := range map[string]bool{
		"always [madvise] never\n": true,
		"[always] madvise never\n": true,
		"always madvise [never]\n": false,
		"":                         false,
	} {
		if got := thpOnRequest(setting); got != want {
			t.Errorf("thpOnRequest(%q) = %v", setting, got)
		}
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
