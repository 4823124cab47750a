package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/blockhost/blockhost/abi"
	"github.com/blockhost/blockhost/internal/testwasm"
)

// TestRun_allowHTTPTakenWhole: an --allow-http value is one grant, commas
// and all — the documented forms with a method list and a list of ranges
// work, and CONNECT in a method list gets its own refusal.
func TestRun_allowHTTPTakenWhole(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, r.Method+" "+r.URL.Path)
	}))
	defer srv.Close()
	spec := "GET,POST " + srv.URL + "/v1/* allow_ranges=127.0.0.1/32,::1/128"
	run := func(method, path string) cliResult {
		return runCLI(t, "", "--log-level", "off", "run", "--allow-http", spec,
			"--input", `{"method":"`+method+`","url":"`+srv.URL+path+`"}`, "http.request")
	}
	if r := run("POST", "/v1/x"); r.code != exitSuccess || !strings.Contains(r.stdout, "POST /v1/x") {
		t.Fatalf("POST under the grant: exit %d\nstdout %s\nstderr %s", r.code, r.stdout, r.stderr)
	}
	for _, tc := range []struct{ method, path string }{{"DELETE", "/v1/x"}, {"POST", "/v2/x"}} {
		if r := run(tc.method, tc.path); r.code != exitError || r.res.Error == nil || r.res.Error.Code != abi.CodePermissionDenied {
			t.Errorf("%s %s outside the grant: exit %d\nstdout %s", tc.method, tc.path, r.code, r.stdout)
		}
	}

	r := runCLI(t, "", "--log-level", "off", "run", "--allow-http", "GET,CONNECT "+srv.URL+"/ allow_ranges=127.0.0.1/32", "--input", `{}`, "http.request")
	if r.code != exitUsage || !strings.Contains(r.stderr, "CONNECT is never allowed") {
		t.Errorf("GET,CONNECT: exit %d stderr %s", r.code, r.stderr)
	}
	for _, bad := range []string{"http://*.com/", "http://a.example/ allow_ranges=0.0.0.0/0", "https://a.example/ allow_ranges=::/0"} {
		if r := runCLI(t, "", "--log-level", "off", "run", "--allow-http", bad, "--input", `{}`, "http.request"); r.code != exitUsage || !strings.Contains(r.stderr, "allow_broad") {
			t.Errorf("--allow-http %q: exit %d stderr %s", bad, r.code, r.stderr)
		}
	}
	if r := runCLI(t, "", "--log-level", "off", "run", "--allow-http", "GET https://*.com/ allow_broad=true", "--input", `{"url":"`+srv.URL+`/"}`, "http.request"); r.code != exitError || r.res.Error == nil || r.res.Error.Code != abi.CodePermissionDenied {
		t.Errorf("*.com with allow_broad=true: exit %d\nstdout %s\nstderr %s", r.code, r.stdout, r.stderr)
	}
}

// TestRun_envTakenWhole: the same rule for every repeatable flag — an
// --env value with commas is one variable.
func TestRun_envTakenWhole(t *testing.T) {
	mod := testwasm.GoFile(t, filepath.Join("testdata", "printenv"))
	r := runCLI(t, "", "--log-level", "off", "run", "--no-cache", "--env", "LIST=a,b,c", "--env", "ONE=1", mod)
	var got struct {
		Env []string `json:"env"`
	}
	if err := json.Unmarshal(r.res.Output, &got); err != nil || r.code != exitSuccess {
		t.Fatalf("exit %d, %v: %s", r.code, err, r.stderr)
	}
	slices.Sort(got.Env)
	if !slices.Equal(got.Env, []string{"LIST=a,b,c", "ONE=1"}) {
		t.Errorf("guest environment %q", got.Env)
	}
}

// TestRun_flagsDoNotWidenTheManifest is the widened-manifest case of issue
// 11: under a manifest granting /v1/ of a server, --allow-http for the
// whole server is refused (exit 2, no request sent) unless --extend-grants
// is given; --allow-dir and --env likewise.
func TestRun_flagsDoNotWidenTheManifest(t *testing.T) {
	var private atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/private.txt" {
			private.Add(1)
		}
		fmt.Fprint(w, r.URL.Path)
	}))
	defer srv.Close()
	u, _ := url.Parse(srv.URL)
	dir := t.TempDir()
	mf := filepath.Join(dir, "fetch.hcl")
	src := fmt.Sprintf(`block "fetch" {
  module = "http.request"
  capabilities {
    http {
      grant "v1" {
        scheme       = "http"
        host         = "127.0.0.1"
        port         = %s
        paths        = ["/v1/"]
        allow_ranges = ["127.0.0.1/32"]
      }
    }
  }
}
`, u.Port())
	if err := os.WriteFile(mf, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	in := `{"url":"` + srv.URL + `/private.txt"}`
	widen := "http://127.0.0.1:" + u.Port() + "/ allow_ranges=127.0.0.1/32"
	for _, flags := range [][]string{
		{"--allow-http", widen},
		{"--allow-dir", dir + ":/data"},
		{"--env", "TOKEN=x"},
	} {
		args := append([]string{"--log-level", "off", "run", "-m", mf, "--input", in}, flags...)
		if r := runCLI(t, "", args...); r.code != exitUsage || r.stdout != "" || !strings.Contains(r.stderr, "--extend-grants") {
			t.Errorf("%s without --extend-grants: exit %d\nstdout %s\nstderr %s", flags[0], r.code, r.stdout, r.stderr)
		}
	}
	if n := private.Load(); n != 0 {
		t.Fatalf("%d requests reached /private.txt", n)
	}
	// The manifest alone is denied there; --extend-grants is the only
	// difference that lets the flag's grant reach it.
	if r := runCLI(t, "", "--log-level", "off", "run", "-m", mf, "--input", in); r.code != exitError || r.res.Error == nil || r.res.Error.Code != abi.CodePermissionDenied {
		t.Errorf("the manifest alone: exit %d\n%s", r.code, r.stdout)
	}
	r := runCLI(t, "", "--log-level", "off", "run", "-m", mf, "--extend-grants", "--allow-http", widen, "--input", in)
	if r.code != exitSuccess || private.Load() != 1 {
		t.Errorf("with --extend-grants: exit %d, %d requests\n%s\n%s", r.code, private.Load(), r.stdout, r.stderr)
	}
}
