//go:build !wasip1

package sdk_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/blockhost/blockhost/abi"
	"github.com/blockhost/blockhost/sdk"
	"github.com/blockhost/blockhost/sdk/sdktest"
)

// A block's main is one call. Natively, the examples run their handlers
// with sdktest.Call instead, which drives the same sdk.Run.
func ExampleRun() {
	upper := func(_ context.Context, in []byte) ([]byte, error) {
		return []byte(strings.ToUpper(string(in))), nil
	}
	// In a block: func main() { sdk.Run(upper) }
	res := sdktest.Call(nil, upper, []byte("shout"))
	fmt.Println(string(res.Output))
	// Output:
	// SHOUT
}

func ExampleRunJSON() {
	type In struct {
		A, B int
	}
	type Out struct {
		Sum int `json:"sum"`
	}
	add := func(_ context.Context, in In) (Out, error) {
		return Out{Sum: in.A + in.B}, nil
	}
	// In a block: func main() { sdk.RunJSON(add) }
	res := sdktest.Call(nil, sdk.JSONHandler(add), []byte(`{"A":2,"B":3}`))
	fmt.Println(string(res.Output))

	res = sdktest.Call(nil, sdk.JSONHandler(add), []byte(`not json`))
	fmt.Println(res.Err.Code, res.Err.Class)
	// Output:
	// {"sum":5}
	// invalid_input(1001) permanent
}

func ExampleNewError() {
	fetch := func(context.Context, []byte) ([]byte, error) {
		return nil, sdk.NewError(abi.CodeResourceUnavailable, abi.ClassRetryable, "upstream is busy")
	}
	res := sdktest.Call(nil, fetch, nil)
	fmt.Println(res.Status, res.Err.Code, res.Err.Class, res.Err.Message)
	// Output:
	// error resource_unavailable(2002) retryable upstream is busy
}

func ExampleRetryable() {
	open := func(context.Context, []byte) ([]byte, error) {
		if _, err := os.Open("/nonexistent/cache"); err != nil {
			return nil, sdk.Retryable(fmt.Errorf("opening cache: %w", err))
		}
		return nil, nil
	}
	res := sdktest.Call(nil, open, nil)
	fmt.Println(res.Err.Code, res.Err.Class)
	// Output:
	// execution_failed(2001) retryable
}

func ExampleLogger() {
	res := sdktest.Call(nil, func(_ context.Context, in []byte) ([]byte, error) {
		log := sdk.Logger{}.With("request", 42)
		log.Info("received", "bytes", len(in))
		log.Warn("slow upstream", "ms", 950)
		return nil, nil
	}, []byte("abc"))
	for _, r := range res.Logs {
		fmt.Println(r)
	}
	// Output:
	// info received request="42" bytes="3"
	// warn slow upstream request="42" ms="950"
}

func ExampleCheck() {
	res := sdktest.Call(nil, func(context.Context, []byte) ([]byte, error) {
		for i := 0; ; i++ {
			if err := sdk.Check(); err != nil {
				return nil, err // the step is over; the host already decided its status
			}
			if i == 3 {
				return []byte("done"), nil
			}
		}
	}, nil)
	fmt.Println(string(res.Output))
	// Output:
	// done
}

func ExampleCallError() {
	res := sdktest.Call(nil, func(context.Context, []byte) ([]byte, error) {
		err := sdk.Log(sdk.Level(9), "no such level")
		fmt.Println(errors.Is(err, sdk.ErrInvalid), err)
		return nil, nil
	}, nil)
	fmt.Println(res.Status)
	// Output:
	// true sdk: log: invalid
	// success
}
