package logkv

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestAppendString(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"empty", "", "\x00"},
		{"plain", "ana", "ana\x00"},
		{"multibyte", "ção", "ção\x00"},
		{"nul inside", "a\x00b", "a\uFFFDb\x00"},
		{"invalid byte", "a\xffb", "a\uFFFDb\x00"},
		{"truncated rune", "\xe2\x82", "\uFFFD\uFFFD\x00"},
		{"replacement char kept", "\uFFFD", "\uFFFD\x00"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := string(AppendString([]byte("x\x00"), tt.in))
			if want := "x\x00" + tt.want; got != want {
				t.Errorf("AppendString(%q) = %q, want %q", tt.in, got, want)
			}
		})
	}
}

func TestDecode(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    []string
		wantErr error
	}{
		{"empty block", "", nil, nil},
		{"abi example", "user\x00ana\x00n\x003\x00", []string{"user", "ana", "n", "3"}, nil},
		{"empty key and value", "\x00\x00", []string{"", ""}, nil},
		{"missing final NUL", "user\x00ana", nil, ErrUnterminated},
		{"odd count", "user\x00", nil, ErrOddCount},
		{"three strings", "a\x00b\x00c\x00", nil, ErrOddCount},
		{"lone NUL", "\x00", nil, ErrOddCount},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Decode([]byte(tt.in))
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Decode(%q) error = %v, want %v", tt.in, err, tt.wantErr)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("Decode(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

// FuzzRoundTrip: whatever a pair of strings holds, encoding it gives a
// block that decodes to the two cleaned strings, and cleaning leaves valid
// NUL-free text untouched.
func FuzzRoundTrip(f *testing.F) {
	f.Add("user", "ana")
	f.Add("", "")
	f.Add("k\x00", "\xff\xfe")
	f.Add("emoji", "🙂 ção")
	f.Fuzz(func(t *testing.T, key, value string) {
		block := AppendString(AppendString(nil, key), value)
		got, err := Decode(block)
		if err != nil {
			t.Fatalf("Decode(encode(%q, %q)) failed: %v", key, value, err)
		}
		want := []string{Clean(key), Clean(value)}
		if !slices.Equal(got, want) {
			t.Fatalf("round trip of (%q, %q) = %q, want %q", key, value, got, want)
		}
		for _, s := range []string{key, value} {
			c := Clean(s)
			if !utf8.ValidString(c) || strings.ContainsRune(c, 0) {
				t.Fatalf("Clean(%q) = %q is not NUL-free UTF-8", s, c)
			}
			if utf8.ValidString(s) && !strings.ContainsRune(s, 0) && c != s {
				t.Fatalf("Clean changed clean text %q to %q", s, c)
			}
			if Clean(c) != c {
				t.Fatalf("Clean is not idempotent on %q", s)
			}
		}
	})
}

// FuzzDecode: Decode never panics, and a block it accepts whose strings are
// valid UTF-8 is exactly what encoding those strings gives back.
func FuzzDecode(f *testing.F) {
	f.Add([]byte("user\x00ana\x00n\x003\x00"))
	f.Add([]byte(""))
	f.Add([]byte("a\x00b"))
	f.Add([]byte("\xff\x00\x00"))
	f.Fuzz(func(t *testing.T, b []byte) {
		strs, err := Decode(b)
		if err != nil {
			return
		}
		if len(strs)%2 != 0 {
			t.Fatalf("Decode(%q) accepted %d strings", b, len(strs))
		}
		var enc []byte
		for _, s := range strs {
			if !utf8.ValidString(s) {
				return
			}
			enc = AppendString(enc, s)
		}
		if string(enc) != string(b) {
			t.Fatalf("re-encoding Decode(%q) gave %q", b, enc)
		}
	})
}
