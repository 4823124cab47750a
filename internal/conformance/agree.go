package conformance

import (
	"context"
	"encoding/json"
	"errors"
	"testing"

	"github.com/blockhost/blockhost/abi"
	"github.com/blockhost/blockhost/host"
	"github.com/blockhost/blockhost/host/engine"
)

// Agree runs the same steps on every named engine that this build can run
// and requires the same result from each, apart from what is measured in
// time: an operator switching engines must see no block's result change.
// Usage figures (peak memory, bytes in and out, host calls) must agree
// too.
func Agree(t *testing.T, engineNames []string) {
	var suites []*Suite
	for _, name := range engineNames {
		s, err := newSuite(t, name)
		if errors.Is(err, engine.ErrUnavailable) {
			t.Logf("engine %s left out: %v", name, err)
			continue
		}
		if err != nil {
			t.Fatalf("engine %s: %v", name, err)
		}
		suites = append(suites, s)
	}
	if len(suites) < 2 {
		t.Skipf("fewer than two engines can run in this build (%d)", len(suites))
	}
	type run struct {
		name  string
		block func(t *testing.T, s *Suite) *host.Block
		step  host.Step
	}
	var runs []run
	for _, st := range statusSteps {
		runs = append(runs, run{"steps/" + st.Name, func(t *testing.T, s *Suite) *host.Block { return s.Load(t, st.Fixture) }, st.step()})
	}
	for _, tc := range ThirdPartyCases {
		if tc.Timeout > 0 {
			continue // ends by its timeout: timing, not a result
		}
		runs = append(runs, run{"thirdParty/" + tc.Name, func(t *testing.T, s *Suite) *host.Block {
			return s.LoadBytes(t, tc.BlockName(), ThirdParty(t, tc.Program))
		}, host.Step{Input: []byte(tc.Stdin), Args: tc.Args}})
	}
	for _, r := range runs {
		t.Run(r.name, func(t *testing.T) {
			var first []byte
			for i, s := range suites {
				st := r.step
				st.ID = "agree"
				res := r.block(t, s).Run(context.Background(), st)
				got := normalize(t, res)
				if i == 0 {
					first = got
					continue
				}
				if string(got) != string(first) {
					t.Errorf("engines disagree:\n%s: %s\n%s: %s", suites[0].Engine, first, s.Engine, got)
				}
			}
		})
	}
}

// normalize returns a result's JSON without the figures that measure time.
func normalize(t *testing.T, res *abi.StepResult) []byte {
	t.Helper()
	c := *res
	c.LatencyMS, c.Usage.WallMS = 0, 0
	b, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
