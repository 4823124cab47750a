package auditlog

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sync"
)

// File is an audit log file that is rotated by size: once a record would
// take it past its maximum, the file is renamed PATH.1 (PATH.1 becoming
// PATH.2, and so on; the oldest beyond keep is removed) and a new PATH
// begins. A record is never split between two files, and a record larger
// than the maximum is written whole into a file of its own.
//
// Rotation drops records only past keep files, and only when the
// operator asked for a maximum: without one (maxSize 0) the file grows
// as a plain append-only file would. A rotation that fails (a rename
// refused, no room for a new file) keeps appending to the file in hand
// and reports the error; nothing is lost to it.
//
// File is safe for concurrent use. Log writes each record in one Write
// call, which is what keeps records whole.
type File struct {
	path    string
	maxSize int64
	keep    int

	mu   sync.Mutex
	f    *os.File
	size int64
}

// OpenFile opens path for appending (creating it with mode 0600), rotated
// past maxSize bytes into at most keep older files; maxSize 0 never
// rotates. keep must be at least 1 when maxSize is set.
func OpenFile(path string, maxSize int64, keep int) (*File, error) {
	if maxSize < 0 {
		return nil, fmt.Errorf("maximum size %d: must not be negative", maxSize)
	}
	if maxSize > 0 && keep < 1 {
		return nil, fmt.Errorf("keep %d: at least one older file must be kept when the size is capped", keep)
	}
	f, size, err := openAppend(path)
	if err != nil {
		return nil, err
	}
	return &File{path: path, maxSize: maxSize, keep: keep, f: f, size: size}, nil
}

func openAppend(path string) (*os.File, int64, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return nil, 0, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, err
	}
	return f, st.Size(), nil
}

// Write appends b, rotating first when b would take a non-empty file past
// the maximum.
func (f *File) Write(b []byte) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.f == nil {
		return 0, os.ErrClosed
	}
	var rotErr error
	if f.maxSize > 0 && f.size > 0 && f.size+int64(len(b)) > f.maxSize {
		rotErr = f.rotate()
	}
	n, err := f.f.Write(b)
	f.size += int64(n)
	if err != nil {
		return n, err
	}
	return n, rotErr
}

// rotate shifts the older files up by one, renames the file in hand
// PATH.1 and opens a new PATH. On failure the file in hand is kept,
// under whichever name it has now.
func (f *File) rotate() error {
	// PATH.keep is replaced by PATH.keep-1's rename, which removes it.
	for i := f.keep - 1; i >= 1; i-- {
		err := os.Rename(fmt.Sprintf("%s.%d", f.path, i), fmt.Sprintf("%s.%d", f.path, i+1))
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("audit log rotation: %w", err)
		}
	}
	if err := os.Rename(f.path, f.path+".1"); err != nil {
		return fmt.Errorf("audit log rotation: %w", err)
	}
	nf, size, err := openAppend(f.path)
	if err != nil {
		// The records go on into PATH.1, which is the file in hand.
		return fmt.Errorf("audit log rotation: %w", err)
	}
	old := f.f
	f.f, f.size = nf, size
	if err := old.Close(); err != nil {
		return fmt.Errorf("audit log rotation: closing the old file: %w", err)
	}
	return nil
}

// Close closes the file in hand.
func (f *File) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.f == nil {
		return os.ErrClosed
	}
	err := f.f.Close()
	f.f = nil
	return err
}
