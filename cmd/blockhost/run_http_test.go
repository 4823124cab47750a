package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/blockhost/blockhost/abi"
	"github.com/blockhost/blockhost/host/httpcap"
	"github.com/blockhost/blockhost/internal/nettest"
	"github.com/blockhost/blockhost/internal/testwasm"
)

func TestParseAllowHTTP(t *testing.T) {
	p := func(s string) []netip.Prefix { return []netip.Prefix{netip.MustParsePrefix(s)} }
	tests := []struct {
		spec string
		want httpcap.Grant
	}{
		{"https://api.example.com", httpcap.Grant{Name: "allow-http-1", Scheme: "https", Host: "api.example.com"}},
		{"https://api.example.com/v1/*", httpcap.Grant{Name: "allow-http-1", Scheme: "https", Host: "api.example.com", Paths: []string{"/v1/"}}},
		{"GET,POST https://*.example.com:8443/v1", httpcap.Grant{Name: "allow-http-1", Scheme: "https", Host: "*.example.com", Port: 8443,
			Methods: []string{"GET", "POST"}, Paths: []string{"/v1"}}},
		{"http://127.0.0.1:8080/ allow_ranges=127.0.0.1/32", httpcap.Grant{Name: "allow-http-1", Scheme: "http", Host: "127.0.0.1", Port: 8080,
			AllowRanges: p("127.0.0.1/32")}},
		{"http://[::1]:9000/x allow_ranges=::1 name=local", httpcap.Grant{Name: "local", Scheme: "http", Host: "::1", Port: 9000,
			Paths: []string{"/x"}, AllowRanges: p("::1/128")}},
		{"POST https://api.example.com/ redirects=2 connect_timeout=1s tls_timeout=2s header_timeout=3s total_timeout=4s " +
			"max_request_body=1KiB max_response_body=2MiB max_header_bytes=8KiB max_concurrent=3",
			httpcap.Grant{Name: "allow-http-1", Scheme: "https", Host: "api.example.com", Methods: []string{"POST"}, Redirects: 2,
				ConnectTimeout: time.Second, TLSTimeout: 2 * time.Second, HeaderTimeout: 3 * time.Second, TotalTimeout: 4 * time.Second,
				MaxRequestBody: 1024, MaxResponseBody: 2 << 20, MaxHeaderBytes: 8 << 10, MaxConcurrent: 3}},
	}
	for _, tc := range tests {
		g, err := parseAllowHTTP(tc.spec, 1)
		if err != nil || !reflect.DeepEqual(g, tc.want) {
			t.Errorf("parseAllowHTTP(%q)\n got %+v, %v\nwant %+v", tc.spec, g, err, tc.want)
		}
	}
	for _, bad := range []string{
		"",
		"GET",
		"api.example.com",
		"ftp://api.example.com/",
		"get https://api.example.com/",
		"https://api.example.com:0/",
		"https://api.example.com:/",
		"https://api.example.com:99999/",
		"https://user@api.example.com/",
		"https://[::1/",
		"https://a.*.example.com/",
		"http://127.0.0.1:8080/", // loopback with no range
		"http://169.254.169.254/ allow_ranges=10.0.0.0/8", // a range that does not cover it
		"https://api.example.com/ redirects=99",
		"https://api.example.com/ total_timeout=soon",
		"https://api.example.com/ max_response_body=lots",
		"https://api.example.com/ color=blue",
		"https://api.example.com/ name=a/b",
		"https://api.example.com/ allow_ranges=nope",
		"https://api.example.com/v1/../admin",
	} {
		if g, err := parseAllowHTTP(bad, 1); err == nil {
			t.Errorf("parseAllowHTTP(%q) = %+v; want an error", bad, g)
		}
	}
}

// FuzzParseAllowHTTP: whatever spec parses, the host accepts as a grant.
func FuzzParseAllowHTTP(f *testing.F) {
	for _, s := range []string{"https://api.example.com/v1/*", "GET,POST http://127.0.0.1:8080/ allow_ranges=127.0.0.1/32",
		"http://[::1]:1/ allow_ranges=::1 name=x redirects=3", "https://*.example.com:8443"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		g, err := parseAllowHTTP(s, 1)
		if err != nil {
			return
		}
		if _, err := httpcap.NewPolicy(g); err != nil {
			t.Fatalf("parseAllowHTTP(%q) = %+v, which the host refuses: %v", s, g, err)
		}
	})
}

// httpTestServer is a loopback server for the CLI tests, counting its
// connections.
func httpTestServer(t *testing.T) (string, *nettest.CountingListener) {
	t.Helper()
	mux := http.NewServeMux()
	mux.HandleFunc("/hello", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		fmt.Fprint(w, "hello, "+r.URL.Query().Get("name"))
	})
	mux.HandleFunc("/busy", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", r.URL.Query().Get("after"))
		w.WriteHeader(http.StatusServiceUnavailable)
	})
	l := nettest.Listen(t)
	srv := &httptest.Server{Listener: l, Config: &http.Server{Handler: mux}}
	srv.Start()
	t.Cleanup(srv.Close)
	return srv.URL, l
}

// TestRun_httpRequest runs the built-in block from the CLI as a new user
// would, against a loopback server granted with --allow-http.
func TestRun_httpRequest(t *testing.T) {
	url, l := httpTestServer(t)
	allow := "GET " + url + "/ allow_ranges=127.0.0.1/32"

	r := runCLI(t, "", "--log-level", "off", "run", "--allow-http", allow, "--input", `{"url":"`+url+`/hello?name=ana"}`, "http.request")
	if r.code != exitSuccess || r.res.Status != abi.StatusSuccess {
		t.Fatalf("exit %d\nstdout %s\nstderr %s", r.code, r.stdout, r.stderr)
	}
	var out struct {
		Status  int                 `json:"status"`
		Headers map[string][]string `json:"headers"`
		Body    string              `json:"body"`
		Grant   string              `json:"grant"`
	}
	if err := json.Unmarshal(r.res.Output, &out); err != nil {
		t.Fatal(err)
	}
	if out.Status != 200 || out.Body != "hello, ana" || out.Headers["Content-Type"][0] != "text/plain" || out.Grant != "allow-http-1" {
		t.Fatalf("output %+v", out)
	}

	// 503 with Retry-After: exit 1, retryable, the wait carried.
	r = runCLI(t, "", "--log-level", "off", "run", "--max-attempts", "1", "--allow-http", allow, "--input", `{"url":"`+url+`/busy?after=30"}`, "http.request")
	if r.code != exitError || r.res.Error == nil || r.res.Error.Code != abi.CodeHTTPError || r.res.Error.Class != abi.ClassRetryable ||
		r.res.Error.RetryAfterMS == nil || *r.res.Error.RetryAfterMS != 30000 {
		t.Fatalf("503: exit %d result %s", r.code, r.stdout)
	}
	// The retry layer waits as the server asked before the next attempt.
	start := time.Now()
	r = runCLI(t, "", "--log-level", "off", "run", "--max-attempts", "2", "--allow-http", allow, "--input", `{"url":"`+url+`/busy?after=1"}`, "http.request")
	if elapsed := time.Since(start); r.res.Attempts != 2 || elapsed < time.Second || elapsed > 5*time.Second {
		t.Fatalf("503 with Retry-After 1: %d attempts in %s; want 2 about a second apart\n%s", r.res.Attempts, elapsed, r.stdout)
	}
	// A permanent error is not retried.
	r = runCLI(t, "", "--log-level", "off", "run", "--max-attempts", "3", "--allow-http", allow, "--input", `{"url":"`+url+`/missing"}`, "http.request")
	if r.res.Attempts != 1 || r.res.Error == nil || r.res.Error.Class != abi.ClassPermanent {
		t.Fatalf("404: %s", r.stdout)
	}

	// Outside the grant: nothing is sent, and the error names the grant.
	before := l.Accepted()
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(url, "http://"))
	for _, u := range []string{"http://localhost:" + port + "/hello", "http://169.254.169.254/latest/meta-data/", url + "/hello"} {
		args := []string{"--log-level", "off", "run", "--allow-http", allow, "--input", `{"method":"POST","url":"` + u + `"}`, "http.request"}
		r = runCLI(t, "", args...)
		if r.code != exitError || r.res.Error == nil || r.res.Error.Code != abi.CodePermissionDenied || !strings.Contains(r.res.Error.Message, "allow-http-1") {
			t.Errorf("POST %s: exit %d result %s", u, r.code, r.stdout)
		}
	}
	if n := l.Accepted() - before; n != 0 {
		t.Errorf("the server accepted %d connections for denied requests", n)
	}

	// No grant at all.
	r = runCLI(t, "", "--log-level", "off", "run", "--input", `{"url":"`+url+`/hello"}`, "http.request")
	if r.code != exitError || r.res.Error == nil || r.res.Error.Code != abi.CodePermissionDenied {
		t.Fatalf("no grant: exit %d result %s", r.code, r.stdout)
	}
}

func TestRun_httpBadFlags(t *testing.T) {
	for _, spec := range []string{
		"http://127.0.0.1:8080/",
		"get http://127.0.0.1:8080/ allow_ranges=127.0.0.1/32",
		"http://127.0.0.1:8080/ allow_ranges=127.0.0.1/32 speed=fast",
	} {
		r := runCLI(t, "", "--log-level", "off", "run", "--allow-http", spec, "--input", `{}`, "http.request")
		if r.code != exitUsage || r.stdout != "" || !strings.Contains(r.stderr, "allow-http") {
			t.Errorf("--allow-http %q: exit %d\nstdout %s\nstderr %s", spec, r.code, r.stdout, r.stderr)
		}
	}
	r := runCLI(t, "", "--log-level", "off", "run", "--allow-http", "http://127.0.0.1:8080/", "--input", `{}`, "http.request")
	if !strings.Contains(r.stderr, "allow_ranges") {
		t.Errorf("the error does not say how to reach loopback: %s", r.stderr)
	}
	r = runCLI(t, "", "--log-level", "off", "run", "--allow-http", "https://a.example/ name=x", "--allow-http", "https://b.example/ name=x", "--input", `{}`, "http.request")
	if r.code != exitUsage {
		t.Errorf("duplicate names: exit %d", r.code)
	}
}

// TestRun_httpTimeout: a server that never answers, under --timeout 300ms,
// ends with timeout and exit 124.
func TestRun_httpTimeout(t *testing.T) {
	addr := nettest.Silent(t)
	start := time.Now()
	r := runCLI(t, "", "--log-level", "off", "run", "--timeout", "300ms", "--allow-http", "http://"+addr+"/ allow_ranges=127.0.0.1/32",
		"--input", `{"url":"http://`+addr+`/"}`, "http.request")
	if r.code != exitTimeout || r.res.Status != abi.StatusTimeout {
		t.Fatalf("exit %d result %s", r.code, r.stdout)
	}
	if elapsed := time.Since(start); elapsed > time.Second {
		t.Fatalf("took %s", elapsed)
	}
}

// TestRun_httpManifest grants HTTP in a manifest to a WebAssembly block
// built with the SDK, and adds a second grant with --allow-http.
func TestRun_httpManifest(t *testing.T) {
	url, _ := httpTestServer(t)
	other, _ := httpTestServer(t)
	wasm := testwasm.GoFile(t, filepath.Join("..", "..", "host", "testdata", "httpblock"))
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(url, "http://"))
	dir := t.TempDir()
	path, cache := filepath.Join(dir, "fetch.hcl"), filepath.Join(dir, "cache")
	src := fmt.Sprintf(`block "fetch" {
  module = %q
  capabilities {
    http {
      grant "test-server" {
        scheme       = "http"
        host         = "127.0.0.1"
        port         = %s
        allow_ranges = ["127.0.0.1/32"]
      }
    }
  }
}
`, wasm, port)
	if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	body := func(r cliResult) (int, string, string) {
		var out struct {
			Status int    `json:"status"`
			Body   string `json:"body"`
			Grant  string `json:"grant"`
		}
		json.Unmarshal(r.res.Output, &out)
		return out.Status, out.Body, out.Grant
	}
	r := runCLI(t, "", "--log-level", "off", "run", "--cache-dir", cache, "--manifest", path, "--input", `{"url":"`+url+`/hello?name=bo","return":true}`)
	if status, b, g := body(r); r.code != exitSuccess || status != 200 || b != "hello, bo" || g != "test-server" {
		t.Fatalf("manifest grant: exit %d %s\n%s", r.code, r.stdout, r.stderr)
	}
	// The other server needs the flag's grant.
	in := `{"url":"` + other + `/hello?name=cy","return":true}`
	r = runCLI(t, "", "--log-level", "off", "run", "--cache-dir", cache, "--manifest", path, "--input", in)
	if r.code != exitError || r.res.Error == nil || r.res.Error.Code != abi.CodePermissionDenied {
		t.Fatalf("without the flag: exit %d %s", r.code, r.stdout)
	}
	// A flag widens the manifest only with --extend-grants.
	r = runCLI(t, "", "--log-level", "off", "run", "--cache-dir", cache, "--manifest", path, "--allow-http", other+"/ allow_ranges=127.0.0.1/32", "--input", in)
	if r.code != exitUsage || r.stdout != "" || !strings.Contains(r.stderr, "--extend-grants") {
		t.Fatalf("the flag without --extend-grants: exit %d %s\n%s", r.code, r.stdout, r.stderr)
	}
	r = runCLI(t, "", "--log-level", "off", "run", "--cache-dir", cache, "--manifest", path, "--extend-grants",
		"--allow-http", other+"/ allow_ranges=127.0.0.1/32", "--input", in)
	if status, b, g := body(r); r.code != exitSuccess || status != 200 || b != "hello, cy" || g != "allow-http-1" {
		t.Fatalf("with the flag: exit %d %s\n%s", r.code, r.stdout, r.stderr)
	}
}

// TestRun_httpSignal interrupts the CLI while the built-in block waits on
// a server that holds the request open: the result is cancelled, exit
// 130, and the server sees its request end.
func TestRun_httpSignal(t *testing.T) {
	entered, sawEnd := make(chan struct{}, 1), make(chan struct{}, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		entered <- struct{}{}
		<-r.Context().Done()
		sawEnd <- struct{}{}
	}))
	defer srv.Close()
	cmd := exec.Command(os.Args[0], "--log-level", "off", "run", "--allow-http", srv.URL+"/ allow_ranges=127.0.0.1/32",
		"--input", `{"url":"`+srv.URL+`/hold"}`, "http.request")
	cmd.Env = append(os.Environ(), "BLOCKHOST_TEST_MAIN=1")
	var out bytes.Buffer
	cmd.Stdout = &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-entered:
	case <-time.After(20 * time.Second):
		cmd.Process.Kill()
		t.Fatal("the request never reached the server")
	}
	signalled := time.Now()
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	err := cmd.Wait()
	took := time.Since(signalled)
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != exitCancelled {
		t.Fatalf("exit %v; want %d\n%s", err, exitCancelled, out.String())
	}
	var res abi.StepResult
	if err := json.Unmarshal(out.Bytes(), &res); err != nil || res.Status != abi.StatusCancelled {
		t.Fatalf("result %s: %v", out.String(), err)
	}
	if took > 5*time.Second {
		t.Errorf("the CLI took %s to end after SIGINT", took)
	}
	select {
	case <-sawEnd:
	case <-time.After(time.Second):
		t.Fatal("the server did not see its request end")
	}
}
