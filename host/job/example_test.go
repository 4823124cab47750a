package job_test

import (
	"context"
	"fmt"
	"strings"

	"github.com/blockhost/blockhost/host"
	"github.com/blockhost/blockhost/host/job"
	"github.com/blockhost/blockhost/plugins"
)

func init() {
	// A built-in block for the examples and tests; blockhost's own come
	// from importing plugins/standard.
	plugins.Register(plugins.Plugin{Name: "jobtest.upper", Summary: "upper-cases its input",
		Run: func(ctx context.Context, call *host.Call) ([]byte, error) {
			return []byte(strings.ToUpper(string(call.Step.Input))), nil
		}})
}

// A request, as a line of `blockhost batch` says it, run through a Service
// whose overrides (the command-line flags) cap every step's timeout.
func Example() {
	ctx := context.Background()
	svc, err := job.New(job.NewConfig().WithOverrides(job.Settings{Limits: host.Limits{Timeout: 5e9}}))
	if err != nil {
		panic(err)
	}
	defer svc.Close(ctx)

	req, err := job.ParseRequest([]byte(`{"step_id":"s1","block":"jobtest.upper","input":"hi","timeout":"1s"}`))
	if err != nil {
		panic(err)
	}
	xr, _ := svc.Resolve(ctx, req)
	fmt.Println("attempt timeout:", xr.Step.Limits.Timeout) // the override wins

	res := svc.Run(ctx, req)
	fmt.Println(res.StepID, res.Status, string(res.Output))
	// Output:
	// attempt timeout: 5s
	// s1 success "HI"
}
