package fscap_test

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/blockhost/blockhost/abi"
	"github.com/blockhost/blockhost/host/fscap"
)

func TestParseDirSpec(t *testing.T) {
	wd, _ := os.Getwd()
	tests := []struct {
		spec  string
		host  string
		guest string
		ro    bool
		bad   bool
	}{
		{spec: "/srv/data", host: "/srv/data", guest: "/data", ro: true},
		{spec: "/srv/data:ro", host: "/srv/data", guest: "/data", ro: true},
		{spec: "/srv/data:rw", host: "/srv/data", guest: "/data"},
		{spec: "/srv/data:/in", host: "/srv/data", guest: "/in", ro: true},
		{spec: "/srv/data:/in:rw", host: "/srv/data", guest: "/in"},
		{spec: "/srv/data:/:ro", host: "/srv/data", guest: "/", ro: true},
		{spec: "blobs:rw", host: filepath.Join(wd, "blobs"), guest: "/blobs"},
		{spec: "/srv/a:b", host: "/srv/a:b", guest: "/a:b", ro: true},
		{spec: "/", host: "/", guest: "/", ro: true},
		{spec: "", bad: true},
		{spec: ":rw", bad: true},
		{spec: "/srv/data:/in/../x", bad: true},
		{spec: "/srv/data:/in/:rw", bad: true},
		{spec: "/srv/data:/in\x01", bad: true},
	}
	for _, tc := range tests {
		g, err := fscap.ParseDirSpec(tc.spec)
		if tc.bad {
			if err == nil {
				t.Errorf("%q: parsed as %+v", tc.spec, g)
			}
			continue
		}
		if err != nil || g.HostDir != tc.host || g.GuestPath != tc.guest || g.ReadOnly != tc.ro || g.Name != tc.guest {
			t.Errorf("%q = %+v, %v; want host %s guest %s ro %v", tc.spec, g, err, tc.host, tc.guest, tc.ro)
		}
	}
}

func TestValidateGrants(t *testing.T) {
	ok := fscap.Grant{HostDir: "/a", GuestPath: "/a"}
	for name, tc := range map[string]struct {
		grants []fscap.Grant
		ok     bool
	}{
		"one":           {[]fscap.Grant{ok}, true},
		"two":           {[]fscap.Grant{ok, {HostDir: "/b", GuestPath: "/b"}}, true},
		"sameGuest":     {[]fscap.Grant{ok, {HostDir: "/b", GuestPath: "/a", Name: "other"}}, false},
		"nested":        {[]fscap.Grant{ok, {HostDir: "/b", GuestPath: "/a/b"}}, true},
		"underRoot":     {[]fscap.Grant{ok, {HostDir: "/b", GuestPath: "/"}}, true},
		"sameName":      {[]fscap.Grant{{HostDir: "/a", GuestPath: "/a", Name: "x"}, {HostDir: "/b", GuestPath: "/b", Name: "x"}}, false},
		"relativeHost":  {[]fscap.Grant{{HostDir: "a", GuestPath: "/a"}}, false},
		"noHost":        {[]fscap.Grant{{GuestPath: "/a"}}, false},
		"relativeGuest": {[]fscap.Grant{{HostDir: "/a", GuestPath: "a"}}, false},
		"dotdotGuest":   {[]fscap.Grant{{HostDir: "/a", GuestPath: "/a/.."}}, false},
		"negativeQuota": {[]fscap.Grant{{HostDir: "/a", GuestPath: "/a", Quota: fscap.Quota{Files: -1}}}, false},
		"negativeTime":  {[]fscap.Grant{{HostDir: "/a", GuestPath: "/a", Timeout: -1}}, false},
	} {
		if err := fscap.ValidateGrants(tc.grants); (err == nil) != tc.ok {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestClassify(t *testing.T) {
	dir := t.TempDir()
	cases := []struct {
		errno     syscall.Errno
		class     error
		result    abi.Result
		code      abi.Code
		retryable bool
	}{
		{syscall.ENOENT, fscap.ErrNotFound, abi.ResultNotFound, abi.CodeResourceUnavailable, false},
		{syscall.EACCES, fscap.ErrPermission, abi.ResultDenied, abi.CodePermissionDenied, false},
		{syscall.EROFS, fscap.ErrPermission, abi.ResultDenied, abi.CodePermissionDenied, false},
		{syscall.EEXIST, fscap.ErrExist, abi.ResultExists, abi.CodeExecutionFailed, false},
		{syscall.ENOSPC, fscap.ErrNoSpace, abi.ResultLimit, abi.CodeQuotaExceeded, false},
		{syscall.EDQUOT, fscap.ErrNoSpace, abi.ResultLimit, abi.CodeQuotaExceeded, false},
		{syscall.ENAMETOOLONG, fscap.ErrInvalidPath, abi.ResultInvalid, abi.CodeInvalidInput, false},
		{syscall.EAGAIN, fscap.ErrUnavailable, abi.ResultUnavailable, abi.CodeResourceUnavailable, true},
		{syscall.EINTR, fscap.ErrUnavailable, abi.ResultUnavailable, abi.CodeResourceUnavailable, true},
		{syscall.EBUSY, fscap.ErrUnavailable, abi.ResultUnavailable, abi.CodeResourceUnavailable, true},
		{syscall.EIO, fscap.ErrIO, abi.ResultIO, abi.CodeResourceUnavailable, true},
	}
	for _, tc := range cases {
		err := fscap.ClassifyForTest(&fs.PathError{Op: "open", Path: dir, Err: tc.errno})
		if !errors.Is(err, tc.class) || !errors.Is(err, tc.errno) {
			t.Errorf("%v: %v is not %v", tc.errno, err, tc.class)
		}
		c := fscap.Classify(err)
		if c.Result != tc.result || c.Code != tc.code || c.Retryable != tc.retryable || fscap.Retryable(err) != tc.retryable {
			t.Errorf("%v: %+v", tc.errno, c)
		}
		se := fscap.StepError(err)
		if se.Code != tc.code || (se.Class == abi.ClassRetryable) != tc.retryable {
			t.Errorf("%v: step error %+v", tc.errno, se)
		}
	}
	if c := fscap.Classify(errors.New("other")); c.Result != abi.ResultIO || !c.Retryable {
		t.Errorf("a foreign error: %+v", c)
	}
	if fscap.StepError(nil) != nil {
		t.Error("StepError(nil) is not nil")
	}
}
