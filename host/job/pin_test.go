package job_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"

	"github.com/blockhost/blockhost/abi"
	"github.com/blockhost/blockhost/host/fscap"
	"github.com/blockhost/blockhost/host/httpcap"
	"github.com/blockhost/blockhost/host/job"
	"github.com/blockhost/blockhost/internal/testwasm"
)

func digestOf(b []byte) string {
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// pinned writes echo.wasm and a manifest pinning it (unpinned when pin is
// false) into a temporary directory.
func pinned(t *testing.T, pin bool) (dir, manifestPath string, echo []byte) {
	t.Helper()
	dir = t.TempDir()
	echo = testwasm.WAT(t, filepath.Join("..", "testdata", "echo.wat"))
	if err := os.WriteFile(filepath.Join(dir, "echo.wasm"), echo, 0o644); err != nil {
		t.Fatal(err)
	}
	src := "block \"echo\" {\n  module = \"echo.wasm\"\n"
	if pin {
		src += fmt.Sprintf("  sha256 = %q\n", strings.TrimPrefix(digestOf(echo), "sha256:"))
	}
	src += "}\n"
	manifestPath = filepath.Join(dir, "echo.hcl")
	if err := os.WriteFile(manifestPath, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir, manifestPath, echo
}

// The swapped-module case of issue 11: a different module copied over a
// pinned manifest's module is refused, naming both digests, and the error
// result carries the refused module's digest; the pinned module runs and
// its result carries its digest.
func TestResolve_pinnedManifest(t *testing.T) {
	dir, mf, echo := pinned(t, true)
	ctx := context.Background()

	svc := newService(t, job.NewConfig())
	res := svc.Run(ctx, job.Request{Manifest: mf, Input: []byte(`{"a":1}`)})
	if res.Status != abi.StatusSuccess || res.Module != digestOf(echo) {
		t.Fatalf("pinned module: %+v, want success with module %s", res, digestOf(echo))
	}

	other := testwasm.WAT(t, filepath.Join("..", "testdata", "wasiecho.wat"))
	if err := os.WriteFile(filepath.Join(dir, "echo.wasm"), other, 0o644); err != nil {
		t.Fatal(err)
	}
	svc = newService(t, job.NewConfig()) // a fresh Service reads the file again
	_, err := svc.Resolve(ctx, job.Request{Manifest: mf})
	var pe *job.PinError
	if !errors.Is(err, job.ErrPinMismatch) || !errors.Is(err, job.ErrLoad) || !errors.As(err, &pe) {
		t.Fatalf("swapped module: %v, want a PinError", err)
	}
	if pe.Pinned != digestOf(echo) || pe.Actual != digestOf(other) {
		t.Errorf("digests pinned %s actual %s; want %s and %s", pe.Pinned, pe.Actual, digestOf(echo), digestOf(other))
	}
	for _, d := range []string{digestOf(echo), digestOf(other)} {
		if !strings.Contains(err.Error(), d) {
			t.Errorf("message %q does not name %s", err, d)
		}
	}
	res = svc.Run(ctx, job.Request{StepID: "s1", Manifest: mf})
	if res.Status != abi.StatusError || res.StepID != "s1" || res.Module != digestOf(other) {
		t.Errorf("error result %+v, want an error under s1 carrying %s", res, digestOf(other))
	}
}

// A request's sha256 pins the module it names, a manifest's or a bare
// module path; it must be a digest, and a built-in block has none.
func TestResolve_requestPin(t *testing.T) {
	dir, mf, echo := pinned(t, false)
	module := filepath.Join(dir, "echo.wasm")
	want := digestOf(echo)
	other := "sha256:" + strings.Repeat("ab", 32)
	svc := newService(t, job.NewConfig())
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		r    job.Request
		err  error
	}{
		{"manifest, right pin", job.Request{Manifest: mf, SHA256: want}, nil},
		{"module, right pin without prefix, upper case", job.Request{Block: module, SHA256: strings.ToUpper(strings.TrimPrefix(want, "sha256:"))}, nil},
		{"manifest, other pin", job.Request{Manifest: mf, SHA256: other}, job.ErrPinMismatch},
		{"module, other pin", job.Request{Block: module, SHA256: other}, job.ErrPinMismatch},
		{"built-in", job.Request{Block: "jobtest.upper", SHA256: want}, job.ErrPinMismatch},
		{"not a digest", job.Request{Block: module, SHA256: "abc"}, job.ErrInvalidRequest},
	} {
		xr, err := svc.Resolve(ctx, tc.r)
		if !errors.Is(err, tc.err) || (tc.err == nil) != (err == nil) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.err)
			continue
		}
		if err == nil {
			res := svc.Start(ctx, xr).Result()
			if res.Module != want {
				t.Errorf("%s: result module %q, want %s", tc.name, res.Module, want)
			}
		}
	}
	res := svc.Run(ctx, job.Request{Block: module, SHA256: other})
	if res.Status != abi.StatusError || res.Module != want || !strings.Contains(res.Error.Message, other) {
		t.Errorf("refused by the request's pin: %+v", res)
	}
}

// An unpinned manifest is warned about once per Service, however many
// steps run it; a pinned one never.
func TestService_unpinnedWarnsOnce(t *testing.T) {
	_, unpinned, _ := pinned(t, false)
	_, pinnedPath, _ := pinned(t, true)
	var buf bytes.Buffer
	svc := newService(t, job.NewConfig().WithLogger(hclog.New(&hclog.LoggerOptions{Output: &buf, Level: hclog.Warn})))
	for range 3 {
		for _, mf := range []string{unpinned, pinnedPath} {
			if res := svc.Run(context.Background(), job.Request{Manifest: mf}); res.Status != abi.StatusSuccess {
				t.Fatalf("%s: %+v", mf, res)
			}
		}
	}
	if n := strings.Count(buf.String(), "does not pin its module"); n != 1 || !strings.Contains(buf.String(), unpinned) {
		t.Errorf("%d warnings, want 1 naming %s:\n%s", n, unpinned, buf.String())
	}
}

// The widened-manifest case of issue 11: the operator's grants (the
// flags) do not add to a manifest's unless ExtendGrants says so, and
// then the request records what was added. A block named without a
// manifest has only the operator's grants, so nothing is widened.
func TestResolve_extendGrants(t *testing.T) {
	dir, mf, _ := pinned(t, true)
	module := filepath.Join(dir, "echo.wasm")
	httpGrant := httpcap.Grant{Name: "allow-http-1", Scheme: "http", Host: "127.0.0.1", Port: 8765,
		AllowRanges: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}}
	for _, tc := range []struct {
		name string
		s    job.Settings
		want string
	}{
		{"http", job.Settings{HTTP: []httpcap.Grant{httpGrant}}, `http grant "allow-http-1": GET,HEAD http://127.0.0.1:8765/ allow_ranges=127.0.0.1/32`},
		{"dir", job.Settings{FS: []fscap.Grant{{HostDir: dir, GuestPath: "/data"}}}, "directory grant /data: " + dir + " (rw)"},
		{"env", job.Settings{Env: map[string]string{"TOKEN": "x"}}, "env TOKEN"},
	} {
		ctx := context.Background()
		svc := newService(t, job.NewConfig().WithOverrides(tc.s))
		_, err := svc.Resolve(ctx, job.Request{Manifest: mf})
		var we *job.WidenError
		if !errors.Is(err, job.ErrGrantsWidened) || !errors.As(err, &we) || !slices.Equal(we.Grants, []string{tc.want}) {
			t.Errorf("%s without ExtendGrants: %v, want a WidenError listing %q", tc.name, err, tc.want)
		}
		if xr, err := svc.Resolve(ctx, job.Request{Block: module}); err != nil || len(xr.ExtendedGrants) != 0 {
			t.Errorf("%s, no manifest: %v, extended %q", tc.name, err, xr.ExtendedGrants)
		}

		tc.s.ExtendGrants = true
		svc = newService(t, job.NewConfig().WithOverrides(tc.s))
		xr, err := svc.Resolve(ctx, job.Request{Manifest: mf})
		if err != nil || !slices.Equal(xr.ExtendedGrants, []string{tc.want}) {
			t.Errorf("%s with ExtendGrants: %v, extended %q", tc.name, err, xr.ExtendedGrants)
		}
	}
	svc := newService(t, job.NewConfig().WithOverrides(job.Settings{ExtendGrants: true}))
	if xr, err := svc.Resolve(context.Background(), job.Request{Manifest: mf}); err != nil || xr.ExtendedGrants != nil {
		t.Errorf("nothing to extend: %v, %q", err, xr.ExtendedGrants)
	}
}
