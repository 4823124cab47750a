package manifest

import (
	"errors"
	"math"
	"testing"
)

func TestParseSize(t *testing.T) {
	tests := []struct {
		in      string
		want    uint64
		wantErr bool
	}{
		{"0", 0, false},
		{"1", 1, false},
		{"65536", 65536, false},
		{"007", 7, false},
		{"1B", 1, false},
		{"1KB", 1000, false},
		{"1MB", 1000 * 1000, false},
		{"1GB", 1000 * 1000 * 1000, false},
		{"1KiB", 1 << 10, false},
		{"64KiB", 64 << 10, false},
		{"64MiB", 64 << 20, false},
		{"4GiB", 4 << 30, false},
		{"64 MiB", 64 << 20, false},
		{"64  KB", 64000, false},
		{"18446744073709551615", math.MaxUint64, false},
		{"18446744073709551615B", math.MaxUint64, false},
		{"17179869183GiB", 17179869183 << 30, false},
		{"18446744073709551KB", 18446744073709551000, false},

		{"", 0, true},
		{"MiB", 0, true},
		{" 1", 0, true},
		{"1 ", 0, true},
		{"1MiB ", 0, true},
		{"-1", 0, true},
		{"+1", 0, true},
		{"1.5GiB", 0, true},
		{"1,000", 0, true},
		{"1e6", 0, true},
		{"0x10", 0, true},
		{"12QB", 0, true},
		{"1mib", 0, true},
		{"1Mb", 0, true},
		{"1kb", 0, true},
		{"1TiB", 0, true},
		{"1 1", 0, true},
		{"1\x00", 0, true},
		{"١٢", 0, true}, // Arabic-Indic digits are not ASCII digits
		// Overflow, in the number itself and after the unit.
		{"18446744073709551616", 0, true},
		{"99999999999999999999999999", 0, true},
		{"17179869184GiB", 0, true},
		{"18446744073709552KB", 0, true},
		{"18446744073709551616B", 0, true},
	}
	for _, tt := range tests {
		got, err := ParseSize(tt.in)
		if tt.wantErr {
			var serr *SizeError
			if !errors.As(err, &serr) {
				t.Errorf("ParseSize(%q) = %d, %v; want a *SizeError", tt.in, got, err)
				continue
			}
			if serr.Size != tt.in || serr.Reason == "" {
				t.Errorf("ParseSize(%q) error = %#v; want Size %q and a Reason", tt.in, serr, tt.in)
			}
			if got != 0 {
				t.Errorf("ParseSize(%q) = %d with an error, want 0", tt.in, got)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d, nil", tt.in, got, err, tt.want)
		}
	}
}

// TestSizeError_format checks the message the CLI shows for a bad --memory
// flag, which names the input and what is wrong with it.
func TestSizeError_format(t *testing.T) {
	_, err := ParseSize("12QB")
	if want := `invalid size "12QB": unknown unit "QB"`; err == nil || err.Error() != want {
		t.Errorf("ParseSize(%q) error = %v, want %s", "12QB", err, want)
	}
}

// FuzzSize checks that ParseSize fails only with a *SizeError. It is not
// called FuzzParseSize so that -fuzz=FuzzParse selects FuzzParse alone.
func FuzzSize(f *testing.F) {
	for _, s := range []string{"0", "64MiB", "1 GB", "18446744073709551615", "17179869184GiB", "12QB", "1.5KiB"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := ParseSize(s)
		if err != nil {
			var serr *SizeError
			if !errors.As(err, &serr) || n != 0 {
				t.Fatalf("ParseSize(%q) = %d, %v; want 0 and a *SizeError", s, n, err)
			}
		}
	})
}
