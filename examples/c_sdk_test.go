//go:build !wasip1

package examples_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/blockhost/blockhost/abi"
	"github.com/blockhost/blockhost/host"
	"github.com/blockhost/blockhost/host/engine"
	"github.com/blockhost/blockhost/host/fscap"
	"github.com/blockhost/blockhost/host/httpcap"
)

// The C SDK's HTTP and file calls build the host's requests right and
// read its answers right, on every engine (testdata/csdk.c).
func TestCSDK_httpAndFiles(t *testing.T) {
	wasm := buildC(t, "testdata/csdk.c")
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("hi " + r.Header.Get("X-Test")))
	}))
	t.Cleanup(srv.Close)
	u, _ := url.Parse(srv.URL)
	port, _ := strconv.Atoi(u.Port())
	policy, err := httpcap.NewPolicy(httpcap.Grant{Name: "local", Scheme: "http", Host: "127.0.0.1", Port: uint16(port),
		AllowRanges: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}})
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range engine.Names() {
		t.Run(name, func(t *testing.T) {
			rt, err := host.NewRuntime(context.Background(), host.NewRuntimeConfig().WithEngine(name))
			if errors.Is(err, engine.ErrUnavailable) {
				t.Skip(err)
			}
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { rt.Close(context.Background()) })
			b, err := rt.Load(context.Background(), "csdk", wasm)
			if err != nil {
				t.Fatal(err)
			}
			dir := t.TempDir()
			os.WriteFile(filepath.Join(dir, "a.txt"), nil, 0o644)
			grants := host.Grants{HTTP: policy, FS: []fscap.Grant{{HostDir: dir, GuestPath: "/data"}}}
			res := b.Run(context.Background(), host.Step{Input: []byte(srv.URL + "/x"), Grants: grants})
			// The step ends with the denied write's detail, after writing its output.
			if res.Status != abi.StatusError || res.Error.Code != abi.CodePermissionDenied {
				t.Fatalf("got %s %+v, want the denied write's permission_denied", res.Status, res.Error)
			}
			if got, want := string(deref(res.OutputText)), `200 hi c "sdk"|a.txt|out.txt`; got != want {
				t.Errorf("output %q, want %q", got, want)
			}

			// A request no grant allows ends the step with the host's detail.
			res = b.Run(context.Background(), host.Step{Input: []byte("http://127.0.0.1:1/"), Grants: grants})
			if res.Status != abi.StatusError || res.Error.Code != abi.CodePermissionDenied || res.Error.Class != abi.ClassPermanent {
				t.Errorf("denied request: %s %+v, want permission_denied", res.Status, res.Error)
			}
		})
	}
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
