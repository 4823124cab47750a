package host

import (
	"strings"
	"testing"

	"github.com/blockhost/blockhost/abi"
	"github.com/blockhost/blockhost/host/engine"
	"github.com/blockhost/blockhost/host/internal/fakecap"
)

// TestCapabilities_lastErrorAlike: every capability's *_last_error
// answers not_found when none of its calls has failed, whatever buffer it
// is given (docs/abi.md §8.1, §9.2): before the registry, fs_last_error
// answered invalid for a bad buffer where http_last_error said not_found.
func TestCapabilities_lastErrorAlike(t *testing.T) {
	var names []string
	for _, f := range abi.Functions() {
		if strings.HasSuffix(f.Name, "_last_error") {
			names = append(names, f.Name)
		}
	}
	if len(names) < 2 {
		t.Fatalf("last-error functions: %v", names)
	}
	for _, name := range names {
		for _, args := range [][]uint64{
			{0x100, 4096, 0x200},       // a good buffer
			{0x100, 4096, 1 << 20},     // n_ptr out of bounds
			{1 << 20, 4096, 0x200},     // buffer out of bounds
			{0xfff0, 0x1000, 0xfffe},   // both straddling the end
			{0x100, 0xffffffff, 0x200}, // a length past the end
		} {
			ts := newTestStep(t, "", Limits{})
			if r := callHost(t, ts.ctx, ts.mem, name, args...); r != abi.ResultNotFound {
				t.Errorf("%s%v with no failed call = %s, want not_found", name, args, r)
			}
		}
	}
}

// TestCapabilities_registered: a capability package the host imports is
// opened for every step with its grant from Grants.Caps (nil without
// one), closed once when the step is done, and an Open error is the
// step's error.
func TestCapabilities_registered(t *testing.T) {
	if capabilityIndex(fakecap.Name) < 0 {
		t.Fatal("the fake capability is not among the host's")
	}
	run := func(id string, g Grants) *abi.Error {
		ts := newTestStep(t, "", Limits{})
		ts.st.id = id
		err := ts.st.open(ts.ctx, g, &engine.RunConfig{})
		ts.st.close()
		return err
	}

	if err := run("granted", Grants{Caps: map[string]any{fakecap.Name: fakecap.Grant{Tag: "t1"}}}); err != nil {
		t.Fatal(err)
	}
	if s := fakecap.Opened("granted"); len(s) != 1 || s[0].Grant == nil || s[0].Grant.Tag != "t1" || s[0].Closed != 1 {
		t.Fatalf("granted: %+v", s)
	}
	if err := run("none", Grants{}); err != nil {
		t.Fatal(err)
	}
	if s := fakecap.Opened("none"); len(s) != 1 || s[0].Grant != nil || s[0].Closed != 1 {
		t.Fatalf("no grant: %+v", s)
	}

	ae := abi.NewError(abi.CodePermissionDenied, abi.ClassPermanent, "no")
	if err := run("abi-error", Grants{Caps: map[string]any{fakecap.Name: fakecap.Grant{Fail: ae}}}); err != ae {
		t.Fatalf("an *abi.Error from Open: %+v", err)
	}
	err := run("other-error", Grants{Caps: map[string]any{fakecap.Name: fakecap.Grant{Fail: fakecap.ErrOpen}}})
	if err == nil || err.Code != abi.CodeResourceUnavailable {
		t.Fatalf("another error from Open: %+v", err)
	}
	if err := run("wrong-type", Grants{Caps: map[string]any{fakecap.Name: "a string"}}); err == nil || err.Code != abi.CodeResourceUnavailable {
		t.Fatalf("a grant of the wrong type: %+v", err)
	}
}
