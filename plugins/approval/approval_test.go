package approval_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/blockhost/blockhost/abi"
	"github.com/blockhost/blockhost/host"
	"github.com/blockhost/blockhost/plugins"
	"github.com/blockhost/blockhost/plugins/approval"
)

func TestParseInput(t *testing.T) {
	in, err := approval.ParseInput([]byte(`{"prompt":"Deploy?","timeout_ms":60000,"approvers":["ana","ben"]}`))
	if err != nil || in.Timeout() != time.Minute || !in.Allows("ben") || in.Allows("zed") || in.Allows("") {
		t.Fatalf("valid input: %+v %v", in, err)
	}
	for field, src := range map[string]string{
		"input":              ``,
		"input.prompt":       `{"timeout_ms":1,"approvers":["a"]}`,
		"input.timeout_ms":   `{"prompt":"?","timeout_ms":0,"approvers":["a"]}`,
		"input.approvers":    `{"prompt":"?","timeout_ms":1,"approvers":[]}`,
		"input.approvers[1]": `{"prompt":"?","timeout_ms":1,"approvers":["a"," "]}`,
		"input.extra":        `{"prompt":"?","timeout_ms":1,"approvers":["a"],"extra":true}`,
	} {
		_, err := approval.ParseInput([]byte(src))
		var ie *approval.InputError
		if !errors.Is(err, approval.ErrInvalidInput) || !errors.As(err, &ie) || ie.Field != field {
			t.Errorf("%s: got %v, want an error naming %s", src, err, field)
		}
	}
	if _, err := approval.ParseInput([]byte(`{"prompt":"?","timeout_ms":2592000001,"approvers":["a"]}`)); !errors.Is(err, approval.ErrInvalidInput) {
		t.Errorf("a deadline past MaxTimeout: %v", err)
	}
}

func TestRun(t *testing.T) {
	p, ok := plugins.Lookup(approval.Name)
	if !ok {
		t.Fatal("human.approval is not registered")
	}
	rt, err := host.NewRuntime(t.Context(), host.NewRuntimeConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close(context.Background())
	blk := rt.Native(p.Name, p.Run)
	step := host.Step{Input: []byte(`{"prompt":"Deploy?","timeout_ms":60000,"approvers":["ana"]}`)}

	// Without a decision there is nothing to return: the block never waits
	// by itself.
	if res := blk.Run(t.Context(), step); res.Status != abi.StatusError || res.Error.Code != abi.CodeResourceUnavailable {
		t.Fatalf("without a decision: %+v", res)
	}
	at := time.Date(2026, 12, 1, 7, 0, 0, 0, time.UTC)
	ctx := approval.WithDecision(t.Context(), approval.Decision{Approved: true, Approver: "ana", Comment: "go", ApprovedAt: at})
	res := blk.Run(ctx, step)
	var out approval.Decision
	if res.Status != abi.StatusSuccess || json.Unmarshal(res.Output, &out) != nil || !out.Approved || out.Approver != "ana" || !out.ApprovedAt.Equal(at) {
		t.Fatalf("with a decision: %+v", res)
	}
	if res := approval.Expired("s1", time.Minute, time.Minute); res.Status != abi.StatusTimeout || res.Error.Code != abi.CodeCancelledByTimeout {
		t.Fatalf("Expired: %+v", res)
	}
	if res := approval.Withdrawn("s1", "cancelled", time.Second); res.Status != abi.StatusCancelled || res.Error.Code != abi.CodeCancelledByUser {
		t.Fatalf("Withdrawn: %+v", res)
	}
}
