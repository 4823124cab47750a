//go:build !wasip1

package sdktest_test

import (
	"context"
	"errors"
	"io/fs"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/blockhost/blockhost/abi"
	"github.com/blockhost/blockhost/sdk"
	"github.com/blockhost/blockhost/sdk/sdktest"
)

// The handler sees only the granted environment, as under the host, and
// the test's environment is back once the step is over.
func TestCall_env(t *testing.T) {
	t.Setenv("SDKTEST_SECRET", "from the test process")
	var secret, granted string
	var n int
	getenv := func(context.Context, []byte) ([]byte, error) {
		secret, granted, n = os.Getenv("SDKTEST_SECRET"), os.Getenv("GREETING"), len(os.Environ())
		return nil, nil
	}

	sdktest.Call(t, getenv, nil)
	if secret != "" || n != 0 {
		t.Errorf("no Env: handler saw SDKTEST_SECRET=%q and %d variables, want none", secret, n)
	}
	sdktest.Config{Env: map[string]string{"GREETING": "hi"}}.Call(t, getenv, nil)
	if granted != "hi" || secret != "" || n != 1 {
		t.Errorf("Env GREETING=hi: handler saw GREETING=%q SDKTEST_SECRET=%q, %d variables; want only GREETING", granted, secret, n)
	}
	if got := os.Getenv("SDKTEST_SECRET"); got != "from the test process" {
		t.Errorf("after the step SDKTEST_SECRET=%q, want the test's value back", got)
	}
}

// A Dir is read-only unless marked ReadWrite, as a grant is on the host.
func TestCall_dirReadOnlyByDefault(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "in.txt"), []byte("in"), 0o644)
	write := func(context.Context, []byte) ([]byte, error) {
		if _, err := fs.ReadFile(sdk.FS(), "data/in.txt"); err != nil {
			return nil, err
		}
		return nil, sdk.WriteFile("/data/out.txt", []byte("out"))
	}

	res := sdktest.Config{FS: []sdktest.Dir{{GuestPath: "/data", HostDir: dir}}}.Call(t, write, nil)
	if res.Err == nil || res.Err.Code != abi.CodePermissionDenied {
		t.Errorf("write to a Dir not marked ReadWrite: %s %+v, want permission_denied", res.Status, res.Err)
	}
	if _, err := os.Stat(filepath.Join(dir, "out.txt")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("out.txt was written under a read-only Dir (%v)", err)
	}

	res = sdktest.Config{FS: []sdktest.Dir{{GuestPath: "/data", HostDir: dir, ReadWrite: true}}}.Call(t, write, nil)
	if res.Status != abi.StatusSuccess {
		t.Errorf("write to a ReadWrite Dir: %s %+v, want success", res.Status, res.Err)
	}
}

// Requests are checked against the grants as on the host: only what a
// grant allows reaches the handler.
func TestCall_httpGrants(t *testing.T) {
	var reached []string
	answer := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		reached = append(reached, r.Method+" "+r.URL.String())
	})
	grants := []sdktest.HTTPGrant{
		{Name: "api", Host: "api.example.com", Paths: []string{"/v1"}},
		{Name: "hooks", Host: "*.hooks.example", Methods: []string{"POST"}},
		{Name: "local", Scheme: "http", Host: "127.0.0.1", Port: 8080, AllowRanges: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}},
		{Name: "private", Scheme: "http", Host: "10.0.0.1"},
	}
	tests := []struct {
		method, url string
		grant       string // "" means denied
		why         string
	}{
		{"GET", "https://api.example.com/v1", "api", ""},
		{"GET", "https://api.example.com/v1/items?page=2", "api", ""},
		{"HEAD", "https://API.example.com/v1/x", "api", ""},
		{"GET", "https://api.example.com/v10", "", "allows paths /v1, not /v10"},
		{"POST", "https://api.example.com/v1/items", "", "allows methods GET,HEAD, not POST"},
		{"GET", "http://api.example.com/v1", "", "no grant allows it"},
		{"GET", "https://api.example.com:8443/v1", "", "allows port 443, not 8443"},
		{"GET", "https://evil.example.com/v1", "", "allows host api.example.com, not evil.example.com"},
		{"POST", "https://a.b.hooks.example/x", "hooks", ""},
		{"POST", "https://hooks.example/x", "", "not hooks.example"},
		{"GET", "http://127.0.0.1:8080/", "local", ""},
		{"GET", "http://10.0.0.1/", "", "special-purpose range"},
		{"GET", "https://user:pw@api.example.com/v1", "", "userinfo"},
	}
	for _, tc := range tests {
		reached = nil
		var err error
		var grant string
		sdktest.Config{HTTPGrants: grants, HTTP: answer}.Call(t, func(ctx context.Context, _ []byte) ([]byte, error) {
			var resp *sdk.HTTPResponse
			resp, err = sdk.HTTPDo(ctx, sdk.NewHTTPRequest(tc.method, tc.url, nil))
			if err == nil {
				grant = resp.Grant
				resp.Body.Close()
			}
			return nil, nil
		}, nil)
		if tc.grant != "" {
			if err != nil || grant != tc.grant || len(reached) != 1 {
				t.Errorf("%s %s: err %v, grant %q, reached %q; want allowed by %s", tc.method, tc.url, err, grant, reached, tc.grant)
			}
			continue
		}
		var he *sdk.HTTPError
		if !errors.Is(err, sdk.ErrDenied) || !errors.As(err, &he) || he.Code != abi.CodePermissionDenied || !strings.Contains(he.Message, tc.why) {
			t.Errorf("%s %s: err %v; want denied, saying %q", tc.method, tc.url, err, tc.why)
		}
		if len(reached) != 0 {
			t.Errorf("%s %s: a denied request reached the handler", tc.method, tc.url)
		}
	}
}

// With grants and no handler, an allowed request fails as a network error
// and a denied one is still denied.
func TestCall_httpNoHandler(t *testing.T) {
	var allowed, denied error
	sdktest.Config{HTTPGrants: []sdktest.HTTPGrant{{Host: "api.example.com"}}}.Call(t, func(ctx context.Context, _ []byte) ([]byte, error) {
		_, allowed = sdk.HTTPGet(ctx, "https://api.example.com/")
		_, denied = sdk.HTTPGet(ctx, "https://other.example.com/")
		return nil, nil
	}, nil)
	if !errors.Is(allowed, sdk.ErrNetwork) {
		t.Errorf("allowed request without a handler: %v, want ErrNetwork", allowed)
	}
	if !errors.Is(denied, sdk.ErrDenied) {
		t.Errorf("request no grant allows: %v, want ErrDenied", denied)
	}
}
