// Command hello is the smallest useful block: it takes {"name":"ana"} and
// returns {"greeting":"hello, ana"}, logging one info record. Input without
// a name ends the step with missing_required_field, permanent.
package main

import (
	"context"

	"github.com/blockhost/blockhost/abi"
	"github.com/blockhost/blockhost/sdk"
)

// Input is the step's input.
type Input struct {
	Name string `json:"name"`
}

// Output is the step's output.
type Output struct {
	Greeting string `json:"greeting"`
}

func greet(_ context.Context, in Input) (Output, error) {
	if in.Name == "" {
		return Output{}, sdk.NewError(abi.CodeMissingRequiredField, abi.ClassPermanent, `input has no "name"`)
	}
	sdk.Logger{}.Info("greeting", "name", in.Name)
	return Output{Greeting: "hello, " + in.Name}, nil
}

func main() {
	sdk.RunJSON(greet)
}
