package host

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/blockhost/blockhost/abi"
	"github.com/blockhost/blockhost/host/engine"
	"github.com/blockhost/blockhost/host/fscap"
)

// fsTestStep is a test step with dir granted at /d, and /e granted too.
func fsTestStep(t *testing.T, q fscap.Quota) (*testStep, string, *engine.RunConfig) {
	t.Helper()
	ts := newTestStep(t, "", Limits{})
	dir := t.TempDir()
	cfg := &engine.RunConfig{}
	g := Grants{FS: []fscap.Grant{{HostDir: dir, GuestPath: "/d", Quota: q}, {HostDir: t.TempDir(), GuestPath: "/e"}}}
	if err := ts.st.open(ts.ctx, g, cfg); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ts.st.close)
	return ts, dir, cfg
}

// Memory layout of these tests.
const (
	pPath  = 0x100  // a path
	pPath2 = 0x1200 // a second path
	pData  = 0x2000
	pN     = 0x3000
	pBuf   = 0x4000
)

func (ts *testStep) fsPath(p string) (uint64, uint64) {
	ts.mem.put(pPath, p)
	return pPath, uint64(len(p))
}

func (ts *testStep) fsLastError(t *testing.T) *abi.Error {
	t.Helper()
	if r := ts.call(t, abi.FuncFSLastError, pBuf, 4096, pN); r != abi.ResultOK {
		t.Fatalf("fs_last_error = %s", r)
	}
	var e abi.Error
	if err := json.Unmarshal(ts.mem.buf[pBuf:pBuf+ts.mem.u32(pN)], &e); err != nil {
		t.Fatal(err)
	}
	return &e
}

func TestFSHostCalls_roundTrip(t *testing.T) {
	ts, dir, cfg := fsTestStep(t, fscap.Quota{WriteBytes: 100})
	if len(cfg.Dirs) != 2 || cfg.Dirs[0].GuestPath != "/d" || cfg.Dirs[0].FS == nil {
		t.Fatalf("the engine got %+v", cfg.Dirs)
	}
	if r := ts.call(t, abi.FuncFSLastError, pBuf, 4096, pN); r != abi.ResultNotFound {
		t.Fatalf("fs_last_error before any failure = %s", r)
	}

	p, n := ts.fsPath("/d/a.txt")
	ts.mem.put(pData, "hello")
	if r := ts.call(t, abi.FuncFSWrite, p, n, pData, 5, 0); r != abi.ResultOK {
		t.Fatalf("fs_write = %s", r)
	}
	if r := ts.call(t, abi.FuncFSWrite, p, n, pData, 5, uint64(abi.FSWriteExclusive)); r != abi.ResultExists {
		t.Fatalf("exclusive fs_write over a file = %s", r)
	}
	if r := ts.call(t, abi.FuncFSAppend, p, n, pData, 5); r != abi.ResultOK {
		t.Fatalf("fs_append = %s", r)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "a.txt")); string(b) != "hellohello" {
		t.Fatalf("a.txt = %q", b)
	}

	// Reads: whole, partial, from an offset, past the end.
	for _, tc := range []struct {
		off, bufLen uint64
		want        string
	}{{0, 100, "hellohello"}, {0, 3, "hel"}, {7, 100, "llo"}, {50, 100, ""}} {
		if r := ts.call(t, abi.FuncFSRead, p, n, tc.off, pBuf, tc.bufLen, pN); r != abi.ResultOK {
			t.Fatalf("fs_read(%d, %d) = %s", tc.off, tc.bufLen, r)
		}
		if got := string(ts.mem.buf[pBuf : pBuf+ts.mem.u32(pN)]); got != tc.want {
			t.Errorf("fs_read(%d, %d) = %q, want %q", tc.off, tc.bufLen, got, tc.want)
		}
	}

	if r := ts.call(t, abi.FuncFSStat, p, n, pBuf); r != abi.ResultOK {
		t.Fatalf("fs_stat = %s", r)
	}
	if size, kind, perm := ts.mem.u64(pBuf), ts.mem.u32(pBuf+16), ts.mem.u32(pBuf+20); size != 10 || abi.FSKind(kind) != abi.FSKindFile || perm != 0o644 {
		t.Fatalf("fs_stat: size %d kind %d perm %o", size, kind, perm)
	}

	dp, dn := ts.fsPath("/d/sub")
	if r := ts.call(t, abi.FuncFSMkdir, dp, dn); r != abi.ResultOK {
		t.Fatalf("fs_mkdir = %s", r)
	}
	lp, ln := ts.fsPath("/d")
	if r := ts.call(t, abi.FuncFSList, lp, ln, pBuf, 3, pN); r != abi.ResultLimit || ts.mem.u32(pN) != 12 {
		t.Fatalf("fs_list into 3 bytes = %s, n %d; want limit, 12", r, ts.mem.u32(pN))
	}
	if r := ts.call(t, abi.FuncFSList, lp, ln, pBuf, 100, pN); r != abi.ResultOK {
		t.Fatalf("fs_list = %s", r)
	}
	if got := string(ts.mem.buf[pBuf : pBuf+ts.mem.u32(pN)]); got != "\x00a.txt\x00\x01sub\x00" {
		t.Fatalf("fs_list wrote %q", got)
	}
	rp, rn := ts.fsPath("/")
	if r := ts.call(t, abi.FuncFSList, rp, rn, pBuf, 100, pN); r != abi.ResultOK ||
		string(ts.mem.buf[pBuf:pBuf+ts.mem.u32(pN)]) != "\x01d\x00\x01e\x00" {
		t.Fatalf("fs_list of / = %s %q", r, ts.mem.buf[pBuf:pBuf+ts.mem.u32(pN)])
	}

	// Renames stay in one grant.
	p, n = ts.fsPath("/d/a.txt")
	ts.mem.put(pPath2, "/e/a.txt")
	if r := ts.call(t, abi.FuncFSRename, p, n, pPath2, 8); r != abi.ResultDenied {
		t.Fatalf("fs_rename across grants = %s", r)
	}
	ts.mem.put(pPath2, "/d/b.txt")
	if r := ts.call(t, abi.FuncFSRename, p, n, pPath2, 8); r != abi.ResultOK {
		t.Fatalf("fs_rename = %s", r)
	}
	p, n = ts.fsPath("/d/b.txt")
	if r := ts.call(t, abi.FuncFSRemove, p, n); r != abi.ResultOK {
		t.Fatalf("fs_remove = %s", r)
	}

	// Refusals, with their detail.
	p, n = ts.fsPath("/d/../etc/passwd")
	if r := ts.call(t, abi.FuncFSRead, p, n, 0, pBuf, 100, pN); r != abi.ResultDenied {
		t.Fatalf("fs_read with .. = %s", r)
	}
	if e := ts.fsLastError(t); e.Code != abi.CodePermissionDenied || e.Class != abi.ClassPermanent || !strings.Contains(e.Message, `".."`) {
		t.Fatalf("detail %+v", e)
	}
	// Fetching the detail does not replace it.
	if e := ts.fsLastError(t); e.Code != abi.CodePermissionDenied {
		t.Fatalf("second fetch %+v", e)
	}
	if ts.st.guestErr != nil {
		t.Fatalf("a denial set the step's error: %+v", ts.st.guestErr)
	}

	// A quota refusal is the step's error even if the block goes on.
	p, n = ts.fsPath("/d/big")
	if r := ts.call(t, abi.FuncFSWrite, p, n, pData, 200, 0); r != abi.ResultLimit {
		t.Fatalf("fs_write over the quota = %s", r)
	}
	if ts.st.guestErr == nil || ts.st.guestErr.Code != abi.CodeQuotaExceeded {
		t.Fatalf("guest error %+v", ts.st.guestErr)
	}
	if _, err := os.Stat(filepath.Join(dir, "big")); err == nil {
		t.Fatal("a refused write left a file")
	}
}

// TestFSHostCalls_invalid: arguments out of bounds or malformed make a
// call invalid, with a detail, and touch nothing.
func TestFSHostCalls_invalid(t *testing.T) {
	ts, dir, _ := fsTestStep(t, fscap.Quota{})
	p, n := ts.fsPath("/d/a")
	ts.mem.put(pPath2, "/d")
	const memEnd = 64 << 10
	for _, tc := range []struct {
		name string
		fn   string
		args []uint64
	}{
		{"read n_ptr out", abi.FuncFSRead, []uint64{p, n, 0, pBuf, 100, 1 << 20}},
		{"read n_ptr straddles", abi.FuncFSRead, []uint64{p, n, 0, pBuf, 100, memEnd - 2}},
		{"read buffer out", abi.FuncFSRead, []uint64{p, n, 0, 60 << 10, 8 << 10, pN}},
		{"read negative offset", abi.FuncFSRead, []uint64{p, n, 1 << 63, pBuf, 100, pN}},
		{"read path too long", abi.FuncFSRead, []uint64{p, 5000, 0, pBuf, 100, pN}},
		{"read path out", abi.FuncFSRead, []uint64{1 << 20, n, 0, pBuf, 100, pN}},
		{"read empty path", abi.FuncFSRead, []uint64{p, 0, 0, pBuf, 100, pN}},
		{"write unknown flag", abi.FuncFSWrite, []uint64{p, n, pData, 5, 2}},
		{"write data out", abi.FuncFSWrite, []uint64{p, n, 60 << 10, 8 << 10, 0}},
		{"append data out", abi.FuncFSAppend, []uint64{p, n, pData, 1 << 20}},
		{"stat out", abi.FuncFSStat, []uint64{p, n, memEnd - 8}},
		{"list n_ptr out", abi.FuncFSList, []uint64{pPath2, 2, pBuf, 100, 1 << 20}},
		{"list buffer out", abi.FuncFSList, []uint64{pPath2, 2, memEnd - 2, 100, pN}},
		{"rename new path too long", abi.FuncFSRename, []uint64{p, n, pPath2, 5000}},
		{"rename new path out", abi.FuncFSRename, []uint64{p, n, 1 << 20, 2}},
		{"mkdir path too long", abi.FuncFSMkdir, []uint64{p, 4097}},
		{"remove path out", abi.FuncFSRemove, []uint64{memEnd, 1}},
		{"last_error n_ptr out", abi.FuncFSLastError, []uint64{pBuf, 100, 1 << 20}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if r := ts.call(t, tc.fn, tc.args...); r != abi.ResultInvalid {
				t.Errorf("%s(%v) = %s, want invalid", tc.fn, tc.args, r)
			}
			if tc.fn != abi.FuncFSLastError {
				if e := ts.fsLastError(t); e.Code != abi.CodeInvalidInput {
					t.Errorf("detail %+v", e)
				}
			}
		})
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("the directory changed: %v", ents)
	}
}

// FuzzFSHostCalls feeds arbitrary paths and arguments to every fs_*
// function: none may panic, and every answer is a defined result.
func FuzzFSHostCalls(f *testing.F) {
	f.Add([]byte("/d/a.txt"), []byte("/d/b.txt"), uint8(0), uint32(0), uint32(100))
	f.Add([]byte("/d/../x"), []byte("/e/x"), uint8(7), uint32(8), uint32(1))
	f.Add([]byte("/d/\x00"), []byte(""), uint8(3), uint32(1<<31), uint32(0))
	f.Fuzz(func(t *testing.T, path, path2 []byte, which uint8, a, b uint32) {
		ts := newTestStep(t, "", Limits{})
		dir := t.TempDir()
		if err := ts.st.open(ts.ctx, Grants{FS: []fscap.Grant{{HostDir: dir, GuestPath: "/d"}}}, &engine.RunConfig{}); err != nil {
			t.Fatal(err)
		}
		defer ts.st.close()
		if len(path) > 4096 || len(path2) > 4096 {
			return
		}
		ts.mem.put(pPath, string(path))
		ts.mem.put(pPath2, string(path2))
		fns := []string{abi.FuncFSRead, abi.FuncFSWrite, abi.FuncFSAppend, abi.FuncFSStat, abi.FuncFSList,
			abi.FuncFSRemove, abi.FuncFSMkdir, abi.FuncFSRename, abi.FuncFSLastError}
		fn := fns[int(which)%len(fns)]
		args := map[string][]uint64{
			abi.FuncFSRead:      {pPath, uint64(len(path)), uint64(a), pBuf, uint64(b % 8192), pN},
			abi.FuncFSWrite:     {pPath, uint64(len(path)), pData, uint64(b % 4096), uint64(a % 3)},
			abi.FuncFSAppend:    {pPath, uint64(len(path)), pData, uint64(b % 4096)},
			abi.FuncFSStat:      {pPath, uint64(len(path)), uint64(b)},
			abi.FuncFSList:      {pPath, uint64(len(path)), pBuf, uint64(b % 8192), pN},
			abi.FuncFSRemove:    {pPath, uint64(len(path))},
			abi.FuncFSMkdir:     {pPath, uint64(len(path))},
			abi.FuncFSRename:    {pPath, uint64(len(path)), pPath2, uint64(len(path2))},
			abi.FuncFSLastError: {pBuf, uint64(b % 8192), uint64(a)},
		}[fn]
		if r := ts.call(t, fn, args...); r > abi.ResultIO {
			t.Fatalf("%s = %d", fn, r)
		}
		if e := ts.detail(t, abi.FuncFSLastError); e != nil && e.Name == "" {
			t.Fatalf("detail without a code name: %+v", e)
		}
	})
}
