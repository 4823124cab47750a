package fscap_test

import (
	"errors"
	"syscall"
	"testing"

	"github.com/blockhost/blockhost/host/fscap"
)

// TestError_reasonChoosesErrno: WASI's error number comes from the typed
// Reason, never from the message: a Detail that reads like a reason
// changes nothing, and a Reason with any Detail decides.
func TestError_reasonChoosesErrno(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  *fscap.Error
		want syscall.Errno
	}{
		{"read-only", &fscap.Error{Class: fscap.ErrPermission, Reason: fscap.ReasonReadOnly, Detail: "other words"}, syscall.EROFS},
		{"is a directory", &fscap.Error{Class: fscap.ErrInvalidPath, Reason: fscap.ReasonIsDir}, syscall.EISDIR},
		{"not a directory", &fscap.Error{Class: fscap.ErrInvalidPath, Reason: fscap.ReasonNotDir}, syscall.ENOTDIR},
		{"read-only text, no reason", &fscap.Error{Class: fscap.ErrPermission, Detail: fscap.ReasonReadOnly.String()}, syscall.EPERM},
		{"is-a-directory text, no reason", &fscap.Error{Class: fscap.ErrInvalidPath, Detail: fscap.ReasonIsDir.String()}, syscall.EINVAL},
		{"not-a-directory text, no reason", &fscap.Error{Class: fscap.ErrInvalidPath, Detail: fscap.ReasonNotDir.String()}, syscall.EINVAL},
	} {
		var errno syscall.Errno
		if err := fscap.ToWASI(tc.err); !errors.As(err, &errno) || errno != tc.want {
			t.Errorf("%s: errno %v, want %v", tc.name, errno, tc.want)
		}
	}
}
