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
		// ExtendGrants: a capability's flags widen a manifest only when
		// allowed (TestResolve_capabilityFlagsWiden).
		o := job.Settings{ExtendGrants: true}
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

// TestResolve_capabilityFlagsWiden: a capability's flag on a manifest is
// refused without ExtendGrants, as --allow-http is, and the refusal and the
// recorded extension name the grant only: the rest of a flag value may be a
// secret (an SQL grant's DSN).
func TestResolve_capabilityFlagsWiden(t *testing.T) {
	dir := t.TempDir()
	mf := filepath.Join(dir, "b.hcl")
	src := "block \"b\" {\n  module = \"jobtest.upper\"\n}\n"
	if err := os.WriteFile(mf, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	flags := map[string][]string{fakecap.Name: {"orders=postgres://u:hunter2@db/x"}}
	svc := newService(t, job.NewConfig().WithOverrides(job.Settings{CapFlags: flags}))
	_, err := svc.Resolve(context.Background(), job.Request{Manifest: mf})
	var we *job.WidenError
	if !errors.As(err, &we) || !errors.Is(err, job.ErrGrantsWidened) {
		t.Fatalf("capability flag on a manifest: %v, want a WidenError", err)
	}
	svc = newService(t, job.NewConfig().WithOverrides(job.Settings{CapFlags: flags, ExtendGrants: true}))
	xr, err := svc.Resolve(context.Background(), job.Request{Manifest: mf})
	if err != nil {
		t.Fatalf("with ExtendGrants: %v", err)
	}
	if got, want := xr.ExtendedGrants, []string{fakecap.Name + ` grant "orders"`}; len(got) != 1 || got[0] != want[0] {
		t.Errorf("extended grants %q, want %q", got, want)
	}
	if got := xr.Step.Audit.ExtendedGrants; len(got) != 1 || got[0] != xr.ExtendedGrants[0] {
		t.Errorf("the step's audit record carries %q, want %q", got, xr.ExtendedGrants)
	}
}
