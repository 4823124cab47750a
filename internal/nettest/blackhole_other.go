//go:build !linux

package nettest

import "testing"

// Blackhole needs Linux's listen queue behaviour; elsewhere it skips the
// test.
func Blackhole(t testing.TB) string {
	t.Skip("nettest: Blackhole needs Linux")
	return ""
}
