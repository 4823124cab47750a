//go:build !linux

package sealed

// File returns ErrUnavailable: sealed memory files are Linux's.
func File(string, []byte) (int, error) { return -1, ErrUnavailable }

// Close does nothing: File never returns a descriptor here.
func Close(int) error { return nil }
