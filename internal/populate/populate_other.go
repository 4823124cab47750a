//go:build !linux

package populate

// Bytes returns a new slice of n bytes, for a file about to be read into
// it.
func Bytes(n int) []byte { return make([]byte, n) }

// Kept returns a new slice of n bytes, for a file about to be read into
// it and kept for long.
func Kept(n int) []byte { return make([]byte, n) }
