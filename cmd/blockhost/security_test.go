package main

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/blockhost/blockhost/abi"
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
