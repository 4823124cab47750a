// Command flaky is a block whose dependency is always down: every step
// ends as error resource_unavailable, class retryable, which tells the
// host that trying again later may succeed.
package main

import (
	"context"

	"github.com/blockhost/blockhost/abi"
	"github.com/blockhost/blockhost/sdk"
)

func call(_ context.Context, _ []byte) ([]byte, error) {
	sdk.Logger{}.Warn("upstream unavailable", "upstream", "inventory")
	return nil, sdk.NewError(abi.CodeResourceUnavailable, abi.ClassRetryable, "inventory service is unavailable; try again later")
}

func main() {
	sdk.Run(call)
}
