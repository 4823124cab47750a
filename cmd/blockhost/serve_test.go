package main

import (
	"encoding/json"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestServe_usageErrors(t *testing.T) {
	store := t.TempDir()
	bad := filepath.Join(t.TempDir(), "serve.hcl")
	if err := os.WriteFile(bad, []byte(`tenant "t" { token "a" { secret = "short" } }`), 0o600); err != nil {
		t.Fatal(err)
	}
	for name, args := range map[string][]string{
		"insecure-local off loopback": {"serve", "--insecure-local", "--listen", "0.0.0.0:0", "--store", store},
		"no tenants":                  {"serve", "--listen", "127.0.0.1:0", "--store", store},
		"bad config":                  {"serve", "--config", bad, "--store", store},
		"missing config":              {"serve", "--config", bad + ".absent", "--store", store},
		"bad max-body":                {"serve", "--max-body", "lots", "--store", store},
		"arguments":                   {"serve", "extra"},
	} {
		t.Run(name, func(t *testing.T) {
			r := runCLI(t, "", args...)
			if r.code != exitUsage || strings.Count(strings.TrimSpace(r.stderr), "\n") > 0 || !strings.HasPrefix(r.stderr, "blockhost: ") {
				t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
			}
		})
	}
}

// TestServe_process runs `blockhost serve` as a process, submits a step
// and stops it with SIGTERM, which drains and exits 0.
func TestServe_process(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	cmd := exec.Command(os.Args[0], "serve", "--insecure-local", "--listen", addr, "--store", t.TempDir(), "--no-cache", "--drain-timeout", "5s")
	cmd.Env = append(os.Environ(), "BLOCKHOST_TEST_MAIN=1")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()

	base := "http://" + addr
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(base + "/_health")
		if err == nil {
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("serve did not answer: %v\n%s", err, stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	body := `{"block":"human.approval","input":{"prompt":"?","timeout_ms":60000,"approvers":["local"]}}`
	resp, err := http.Post(base+"/v1/steps", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	var v map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&v)
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted || v["status"] != "waiting" {
		t.Fatalf("submit: %d %v", resp.StatusCode, v)
	}

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("after SIGTERM: %v\n%s", err, stderr.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("serve did not stop after SIGTERM\n%s", stderr.String())
	}
	if !strings.Contains(stderr.String(), "draining") {
		t.Fatalf("no drain logged:\n%s", stderr.String())
	}
}
