package job_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/blockhost/blockhost/host/internal/fakecap"
	"github.com/blockhost/blockhost/host/job"
)

// TestResolve_capabilityGrants: a registered capability's manifest
// section and flag values reach the step's Grants.Caps with no code for
// it in the job layer: the manifest's grant, with the flags' added by the
// capability; a bad flag value is a configuration error.
func TestResolve_capabilityGrants(t *testing.T) {
	dir := t.TempDir()
	mf := filepath.Join(dir, "b.hcl")
	src := `block "b" {
  module = "jobtest.upper"
  capabilities {
    fake { tag = "manifest" }
  }
}
`
	if err := os.WriteFile(mf, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		flags []string
		req   job.Request
		want  any
	}{
		{"manifest", nil, job.Request{Manifest: mf}, fakecap.Grant{Tag: "manifest"}},
		{"manifest and flags", []string{"a", "b"}, job.Request{Manifest: mf}, fakecap.Grant{Tag: "manifest+a+b"}},
		{"flags alone", []string{"a"}, job.Request{Block: "jobtest.upper"}, fakecap.Grant{Tag: "+a"}},
		{"none", nil, job.Request{Block: "jobtest.upper"}, nil},
	} {
		o := job.Settings{}
		if tc.flags != nil {
			o.CapFlags = map[string][]string{fakecap.Name: tc.flags}
		}
		svc := newService(t, job.NewConfig().WithOverrides(o))
		xr, err := svc.Resolve(context.Background(), tc.req)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if got := xr.Step.Grants.Caps[fakecap.Name]; got != tc.want {
			t.Errorf("%s: grant %#v, want %#v", tc.name, got, tc.want)
		}
	}

	var ce *job.ConfigError
	_, err := job.New(job.NewConfig().WithOverrides(job.Settings{CapFlags: map[string][]string{fakecap.Name: {"bad"}}}))
	if !errors.As(err, &ce) {
		t.Fatalf("a refused flag value: %v", err)
	}
	_, err = job.New(job.NewConfig().WithOverrides(job.Settings{CapFlags: map[string][]string{"nosuch": {"x"}}}))
	if !errors.As(err, &ce) {
		t.Fatalf("flags for no capability: %v", err)
	}
}
