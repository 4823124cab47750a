package fsblob_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/blockhost/blockhost/abi"
	"github.com/blockhost/blockhost/host"
	"github.com/blockhost/blockhost/host/fscap"
	"github.com/blockhost/blockhost/internal/fsattack"
	"github.com/blockhost/blockhost/plugins"
	"github.com/blockhost/blockhost/plugins/fsblob"
)

func runtime(t *testing.T) *host.Runtime {
	t.Helper()
	rt, err := host.NewRuntime(context.Background(), host.NewRuntimeConfig())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rt.Close(context.Background()) })
	return rt
}

func run(t *testing.T, rt *host.Runtime, name string, step host.Step) *abi.StepResult {
	t.Helper()
	p, ok := plugins.Lookup(name)
	if !ok {
		t.Fatalf("%s is not registered", name)
	}
	return rt.Native(p.Name, p.Run).Run(context.Background(), step)
}

func blobGrant(dir string, ro bool) host.Grants {
	return host.Grants{FS: []fscap.Grant{{HostDir: dir, GuestPath: "/blobs", ReadOnly: ro}}}
}

func output(res *abi.StepResult) []byte {
	switch {
	case res.Output != nil:
		return res.Output
	case res.OutputText != nil:
		return []byte(*res.OutputText)
	}
	return res.OutputBase64
}

// TestBlob_roundTrip10MiB: fs.blob_put then fs.blob_get returns 10 MiB byte
// for byte, content-addressed and named.
func TestBlob_roundTrip10MiB(t *testing.T) {
	rt := runtime(t)
	dir := t.TempDir()
	data := make([]byte, 10<<20)
	rand.Read(data)
	sum := sha256.Sum256(data)
	limits := host.Limits{Output: 11 << 20}

	res := run(t, rt, fsblob.PutName, host.Step{Input: data, Grants: blobGrant(dir, false)})
	if res.Status != abi.StatusSuccess {
		t.Fatalf("put: %s %+v", res.Status, res.Error)
	}
	var put fsblob.PutResult
	if err := json.Unmarshal(res.Output, &put); err != nil {
		t.Fatal(err)
	}
	hexSum := hex.EncodeToString(sum[:])
	if put.Key != "sha256:"+hexSum || put.Size != 10<<20 || !put.Created || put.Path != "/blobs/sha256/"+hexSum[:2]+"/"+hexSum {
		t.Fatalf("put = %+v", put)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "sha256", hexSum[:2], hexSum)); !bytes.Equal(b, data) {
		t.Fatal("the stored file differs")
	}
	res = run(t, rt, fsblob.GetName, host.Step{Input: []byte(`{"key":"` + put.Key + `"}`), Grants: blobGrant(dir, true), Limits: limits})
	if res.Status != abi.StatusSuccess || !bytes.Equal(output(res), data) {
		t.Fatalf("get: %s %+v, %d bytes", res.Status, res.Error, len(output(res)))
	}
	// Storing the same content again writes nothing.
	res = run(t, rt, fsblob.PutName, host.Step{Input: data, Grants: blobGrant(dir, false)})
	if err := json.Unmarshal(res.Output, &put); err != nil || put.Created {
		t.Fatalf("second put: %s %+v", res.Output, err)
	}

	// Named, through arguments.
	res = run(t, rt, fsblob.PutName, host.Step{Input: data, Args: []string{"--name", "reports/q3.bin"}, Grants: blobGrant(dir, false)})
	if res.Status != abi.StatusSuccess {
		t.Fatalf("named put: %s %+v", res.Status, res.Error)
	}
	var named fsblob.PutResult
	if err := json.Unmarshal(res.Output, &named); err != nil || !named.Created {
		t.Fatalf("first named put: created %v (%v), want true", named.Created, err)
	}
	res = run(t, rt, fsblob.PutName, host.Step{Input: data, Args: []string{"--name", "reports/q3.bin"}, Grants: blobGrant(dir, false)})
	if err := json.Unmarshal(res.Output, &named); err != nil || named.Created {
		t.Fatalf("named put over an existing blob: created %v (%v), want false", named.Created, err)
	}
	res = run(t, rt, fsblob.GetName, host.Step{Args: []string{"--name", "reports/q3.bin", "--dir", "/blobs"}, Grants: blobGrant(dir, true), Limits: limits})
	if res.Status != abi.StatusSuccess || !bytes.Equal(output(res), data) {
		t.Fatalf("named get: %s %+v", res.Status, res.Error)
	}
}

func TestBlob_errors(t *testing.T) {
	rt := runtime(t)
	dir := t.TempDir()
	small := []byte("small blob")
	if res := run(t, rt, fsblob.PutName, host.Step{Input: small, Args: []string{"--name", "x"}, Grants: blobGrant(dir, false)}); res.Status != abi.StatusSuccess {
		t.Fatalf("put: %+v", res.Error)
	}
	sum := sha256.Sum256([]byte("other"))
	missing := "sha256:" + hex.EncodeToString(sum[:])
	l := fsattack.New(t)
	two := host.Grants{FS: []fscap.Grant{{HostDir: dir, GuestPath: "/a"}, {HostDir: t.TempDir(), GuestPath: "/b"}}}
	quota := host.Grants{FS: []fscap.Grant{{HostDir: dir, GuestPath: "/blobs", Quota: fscap.Quota{WriteBytes: 4}}}}
	tests := []struct {
		name  string
		block string
		step  host.Step
		code  abi.Code
	}{
		{"putReadOnly", fsblob.PutName, host.Step{Input: small, Grants: blobGrant(dir, true)}, abi.CodePermissionDenied},
		{"putNoGrant", fsblob.PutName, host.Step{Input: small}, abi.CodePermissionDenied},
		{"putQuota", fsblob.PutName, host.Step{Input: small, Grants: quota}, abi.CodeQuotaExceeded},
		{"putIfAbsent", fsblob.PutName, host.Step{Input: small, Args: []string{"--name", "x", "--if-absent"}, Grants: blobGrant(dir, false)}, abi.CodeExecutionFailed},
		{"putEscape", fsblob.PutName, host.Step{Input: small, Args: []string{"--name", "../secret.txt"}, Grants: blobGrant(l.Grant, false)}, abi.CodePermissionDenied},
		{"putEscapeLink", fsblob.PutName, host.Step{Input: small, Args: []string{"--name", "link_up/secret.txt"}, Grants: blobGrant(l.Grant, false)}, abi.CodePermissionDenied},
		{"putTwoGrants", fsblob.PutName, host.Step{Input: small, Grants: two}, abi.CodeInvalidInput},
		{"putBadArg", fsblob.PutName, host.Step{Input: small, Args: []string{"--bogus"}, Grants: blobGrant(dir, false)}, abi.CodeInvalidInput},
		{"getMissing", fsblob.GetName, host.Step{Input: []byte(`{"key":"` + missing + `"}`), Grants: blobGrant(dir, true)}, abi.CodeResourceUnavailable},
		{"getBadKey", fsblob.GetName, host.Step{Input: []byte(`{"key":"md5:abc"}`), Grants: blobGrant(dir, true)}, abi.CodeInvalidInput},
		{"getNoKey", fsblob.GetName, host.Step{Input: []byte(`{}`), Grants: blobGrant(dir, true)}, abi.CodeMissingRequiredField},
		{"getTooBig", fsblob.GetName, host.Step{Input: []byte(`{"name":"x"}`), Grants: blobGrant(dir, true), Limits: host.Limits{Output: 4}}, abi.CodeQuotaExceeded},
		{"getEscape", fsblob.GetName, host.Step{Input: []byte(`{"name":"link_rel"}`), Grants: blobGrant(l.Grant, true)}, abi.CodePermissionDenied},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res := run(t, rt, tc.block, tc.step)
			if res.Status != abi.StatusError || res.Error.Code != tc.code {
				t.Fatalf("%s %+v, want error %s", res.Status, res.Error, tc.code)
			}
			if l.Leaked(output(res)) {
				t.Fatal("leaked a canary")
			}
		})
	}
	l.Check(t)

	// A content-addressed blob whose file was changed behind the store's
	// back is refused, not returned.
	res := run(t, rt, fsblob.PutName, host.Step{Input: small, Grants: blobGrant(dir, false)})
	var put fsblob.PutResult
	json.Unmarshal(res.Output, &put)
	if err := os.WriteFile(filepath.Join(dir, put.Path[len("/blobs/"):]), []byte("tampered!!"), 0o644); err != nil {
		t.Fatal(err)
	}
	res = run(t, rt, fsblob.GetName, host.Step{Input: []byte(`{"key":"` + put.Key + `"}`), Grants: blobGrant(dir, true)})
	if res.Status != abi.StatusError || res.Error.Code != abi.CodeResourceUnavailable {
		t.Fatalf("tampered blob: %s %+v", res.Status, res.Error)
	}
}
