package sealed

import (
	"errors"

	"golang.org/x/sys/unix"
)

// File returns a descriptor of a new sealed memory file named name
// holding b; the caller closes it.
func File(name string, b []byte) (int, error) {
	fd, err := unix.MemfdCreate(name, unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	if err != nil {
		return -1, errors.Join(ErrUnavailable, err)
	}
	for rest := b; len(rest) > 0 && err == nil; {
		var n int
		n, err = unix.Write(fd, rest)
		rest = rest[n:]
	}
	if err == nil {
		_, err = unix.FcntlInt(uintptr(fd), unix.F_ADD_SEALS,
			unix.F_SEAL_SHRINK|unix.F_SEAL_GROW|unix.F_SEAL_WRITE|unix.F_SEAL_SEAL)
	}
	if err != nil {
		unix.Close(fd)
		return -1, err
	}
	return fd, nil
}

// Close closes a descriptor File returned.
func Close(fd int) error { return unix.Close(fd) }
