package abi

import (
	"testing"
	"time"
)

func TestHTTPStatusClass(t *testing.T) {
	retryable := map[int]bool{408: true, 429: true, 500: true, 502: true, 503: true, 504: true}
	for status := 400; status < 600; status++ {
		want := ClassPermanent
		if retryable[status] {
			want = ClassRetryable
		}
		if got := HTTPStatusClass(status); got != want {
			t.Errorf("HTTPStatusClass(%d) = %s, want %s", status, got, want)
		}
	}
	for _, s := range []int{429, 503} {
		if !HTTPStatusCarriesRetryAfter(s) {
			t.Errorf("%d does not carry Retry-After", s)
		}
	}
	for _, s := range []int{200, 408, 500, 502, 504} {
		if HTTPStatusCarriesRetryAfter(s) {
			t.Errorf("%d carries Retry-After", s)
		}
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2025, 1, 27, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		v    string
		want time.Duration
		ok   bool
	}{
		{"0", 0, true},
		{"120", 2 * time.Minute, true},
		{" 7 ", 7 * time.Second, true},
		{"99999999999", MaxRetryAfter, true},
		{"Mon, 27 Jan 2025 12:01:30 GMT", 90 * time.Second, true},
		{"Monday, 27-Jan-25 12:00:10 GMT", 10 * time.Second, true},
		{"Mon Jan 27 12:00:05 2025", 5 * time.Second, true},
		{"Mon, 27 Jan 2025 11:00:00 GMT", 0, true}, // in the past
		{"Tue, 27 Jan 2026 12:00:00 GMT", MaxRetryAfter, true},
		{"", 0, false},
		{"-1", 0, false},
		{"1.5", 0, false},
		{"soon", 0, false},
	}
	for _, tc := range tests {
		got, ok := ParseRetryAfter(tc.v, now)
		if got != tc.want || ok != tc.ok {
			t.Errorf("ParseRetryAfter(%q) = %s, %v; want %s, %v", tc.v, got, ok, tc.want, tc.ok)
		}
	}
}

func TestFunctions_http(t *testing.T) {
	for name, params := range map[string]int{
		FuncHTTPRequest: 5, FuncHTTPResponseHead: 4, FuncHTTPBodyRead: 4, FuncHTTPClose: 1, FuncHTTPLastError: 3,
	} {
		sig, ok := LookupFunction(name)
		if !ok || len(sig.Params) != params || len(sig.Results) != 1 {
			t.Errorf("%s: %+v, %v", name, sig, ok)
		}
	}
}

func TestFunctions_immutable(t *testing.T) {
	fs := Functions()
	fs[0].Signature.Params[0] = I64
	fs[0].Name = "changed"
	if sig, ok := LookupFunction(FuncInputLen); !ok || sig.Params[0] != I32 {
		t.Fatalf("input_len after changing a copy: %+v, %v", sig, ok)
	}
	sig, _ := LookupFunction(FuncInputLen)
	sig.Params[0] = I64
	if again, _ := LookupFunction(FuncInputLen); again.Params[0] != I32 {
		t.Fatalf("input_len after changing a looked-up copy: %+v", again)
	}
	seen := map[string]bool{}
	for _, f := range Functions() {
		if seen[f.Name] {
			t.Errorf("%s twice in the table", f.Name)
		}
		seen[f.Name] = true
	}
}
