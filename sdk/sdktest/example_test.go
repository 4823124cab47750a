//go:build !wasip1

package sdktest_test

import (
	"context"
	"fmt"

	"github.com/blockhost/blockhost/abi"
	"github.com/blockhost/blockhost/sdk"
	"github.com/blockhost/blockhost/sdk/sdktest"
)

type input struct {
	Name string `json:"name"`
}

type output struct {
	Greeting string `json:"greeting"`
}

// greet is a block's handler; its main would be sdk.RunJSON(greet).
func greet(_ context.Context, in input) (output, error) {
	if in.Name == "" {
		return output{}, sdk.NewError(abi.CodeMissingRequiredField, abi.ClassPermanent, `"name" is required`)
	}
	sdk.Logger{}.Info("greeting", "name", in.Name)
	return output{Greeting: "hello, " + in.Name}, nil
}

// In a test, pass the test's t instead of nil: the block's log records
// then show up in the test's output.
func ExampleCall() {
	res := sdktest.Call(nil, sdk.JSONHandler(greet), []byte(`{"name":"ana"}`))
	fmt.Println(res.Status, string(res.Output))
	fmt.Println(res.Logs[0])

	res = sdktest.Call(nil, sdk.JSONHandler(greet), []byte(`{}`))
	fmt.Println(res.Status, res.Err.Code, res.Err.Class, res.Err.Message)
	// Output:
	// success {"greeting":"hello, ana"}
	// info greeting name="ana"
	// error missing_required_field(1002) permanent "name" is required
}

func ExampleConfig_Call() {
	cfg := sdktest.Config{OutputLimit: 8}
	res := cfg.Call(nil, func(context.Context, []byte) ([]byte, error) {
		return []byte("more than eight bytes"), nil
	}, nil)
	fmt.Println(res.Status, res.Err.Code)
	// Output:
	// error quota_exceeded(2004)
}
