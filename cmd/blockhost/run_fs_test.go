package main

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/blockhost/blockhost/abi"
	"github.com/blockhost/blockhost/internal/testwasm"
	"github.com/blockhost/blockhost/plugins/fsblob"
)

// TestRun_blobRoundTrip stores 10 MiB with fs.blob_put and reads it back
// with fs.blob_get, through the command line as a user types it.
func TestRun_blobRoundTrip(t *testing.T) {
	dir := t.TempDir()
	blobs := filepath.Join(dir, "blobs")
	if err := os.Mkdir(blobs, 0o755); err != nil {
		t.Fatal(err)
	}
	data := make([]byte, 10<<20)
	rand.Read(data)
	in := filepath.Join(dir, "in.bin")
	if err := os.WriteFile(in, data, 0o644); err != nil {
		t.Fatal(err)
	}
	r := runCLI(t, "", "--log-level", "off", "run", "--no-cache", "--allow-dir", blobs+":rw", "--input", "@"+in, "fs.blob_put")
	if r.code != exitSuccess || r.res.Status != abi.StatusSuccess {
		t.Fatalf("put: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	var put fsblob.PutResult
	if err := json.Unmarshal(r.res.Output, &put); err != nil {
		t.Fatal(err)
	}
	r = runCLI(t, "", "--log-level", "off", "run", "--no-cache", "--allow-dir", blobs, "--output-limit", "11MiB",
		"--input", `{"key":"`+put.Key+`"}`, "fs.blob_get")
	if r.code != exitSuccess || !bytes.Equal(r.res.OutputBase64, data) {
		t.Fatalf("get: exit %d, %d bytes, error %+v\n%s", r.code, len(r.res.OutputBase64), r.res.Error, r.stderr)
	}
	// Named, with the block's own arguments after its name.
	r = runCLI(t, "", "--log-level", "off", "run", "--no-cache", "--allow-dir", blobs+":/store:rw", "--input", "hello", "fs.blob_put", "--name", "greeting.txt")
	if r.code != exitSuccess {
		t.Fatalf("named put: exit %d\n%s", r.code, r.stdout)
	}
	r = runCLI(t, "", "--log-level", "off", "run", "--no-cache", "--allow-dir", blobs+":/store", "fs.blob_get", "--name", "greeting.txt")
	if r.code != exitSuccess || r.res.OutputText == nil || *r.res.OutputText != "hello" {
		t.Fatalf("named get: exit %d\n%s", r.code, r.stdout)
	}
	// Under a read-only grant the put is refused and nothing changes.
	r = runCLI(t, "", "--log-level", "off", "run", "--no-cache", "--allow-dir", blobs, "--input", "other", "fs.blob_put", "--name", "greeting.txt")
	if r.code != exitError || r.res.Error == nil || r.res.Error.Code != abi.CodePermissionDenied {
		t.Fatalf("put under ro: exit %d\n%s", r.code, r.stdout)
	}
	if b, _ := os.ReadFile(filepath.Join(blobs, "greeting.txt")); string(b) != "hello" {
		t.Fatalf("greeting.txt = %q", b)
	}
}

// TestRun_allowDirManifest grants directories through a manifest and a
// flag to a WASI command.
func TestRun_allowDirManifest(t *testing.T) {
	wasm := testwasm.GoFile(t, filepath.Join("..", "..", "host", "testdata", "fswasi"))
	dir := t.TempDir()
	for _, d := range []string{"in", "out", "other"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	os.WriteFile(filepath.Join(dir, "in", "a.txt"), []byte("from the manifest's grant"), 0o644)
	man := filepath.Join(dir, "block.hcl")
	src := `block "fswasi" {
  module = "` + wasm + `"
  capabilities {
    filesystem {
      dir "in" {
        host = "./in"
      }
      dir "out" {
        host = "./out"
        mode = "rw"
        quota {
          write_bytes = "1KiB"
        }
      }
    }
  }
}
`
	if err := os.WriteFile(man, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	ops := `{"ops":[{"op":"read","path":"/in/a.txt"},{"op":"write","path":"/out/b.txt","data":"written"},{"op":"write","path":"/in/c.txt","data":"x"}]}`
	r := runCLI(t, "", "--log-level", "off", "run", "--no-cache", "--manifest", man, "--input", ops)
	if r.code != exitSuccess {
		t.Fatalf("exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	var results []struct{ Result, Data, Errno string }
	if err := json.Unmarshal(r.res.Output, &results); err != nil {
		t.Fatalf("output %s: %v", r.res.Output, err)
	}
	if results[0].Data != "from the manifest's grant" || results[1].Result != "ok" || results[2].Errno != "EROFS" {
		t.Fatalf("results %+v", results)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "out", "b.txt")); string(b) != "written" {
		t.Fatalf("b.txt = %q", b)
	}
	// The quota of the manifest holds.
	big := `{"ops":[{"op":"write","path":"/out/big.txt","data":"` + strings.Repeat("x", 2000) + `"}]}`
	r = runCLI(t, "", "--log-level", "off", "run", "--no-cache", "--manifest", man, "--input", big)
	if r.code != exitError || r.res.Error.Code != abi.CodeQuotaExceeded {
		t.Fatalf("over the quota: exit %d\n%s", r.code, r.stdout)
	}
	// With --extend-grants, a flag for the same guest path replaces the
	// manifest's grant.
	r = runCLI(t, "", "--log-level", "off", "run", "--no-cache", "--manifest", man, "--extend-grants",
		"--allow-dir", filepath.Join(dir, "other")+":/in:rw", "--input", `{"ops":[{"op":"write","path":"/in/c.txt","data":"x"}]}`)
	if r.code != exitSuccess {
		t.Fatalf("exit %d\n%s", r.code, r.stdout)
	}
	if _, err := os.Stat(filepath.Join(dir, "other", "c.txt")); err != nil {
		t.Fatalf("the flag's grant was not used: %v", err)
	}
}

func TestRun_allowDirErrors(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "f")
	os.WriteFile(file, nil, 0o644)
	for _, tc := range []struct {
		flag string
		want string
	}{
		{filepath.Join(dir, "missing"), "no such file"},
		{file, "not a directory"},
		{dir + ":/a/../b", `".." element`},
		{dir + ":data", "no such file"}, // a GUEST must be absolute; this is a host path with a colon
		{"", "no host directory"},
	} {
		r := runCLI(t, "", "run", "--allow-dir", tc.flag, "fs.blob_get")
		if r.code != exitUsage || !strings.Contains(r.stderr, "--allow-dir") || !strings.Contains(r.stderr, tc.want) ||
			strings.Count(strings.TrimSpace(r.stderr), "\n") != 0 {
			t.Errorf("--allow-dir %q: exit %d, stderr %q", tc.flag, r.code, r.stderr)
		}
	}
	r := runCLI(t, "", "run", "--allow-dir", dir+":/a", "--allow-dir", dir+":/a", "fs.blob_get")
	if r.code != exitUsage || !strings.Contains(r.stderr, "overlap") {
		t.Errorf("overlapping grants: exit %d, stderr %q", r.code, r.stderr)
	}
}
