// Command loop is a block that never finishes: its handler spins in pure
// computation and makes no host call, so only the host's interruption can
// end the step, which then ends as timeout.
package main

import (
	"context"
	"strconv"

	"github.com/blockhost/blockhost/sdk"
)

// spin steps a 64-bit linear congruential generator until it reaches zero.
// The increment is odd, so the sequence visits every value once per 2^64
// steps: the loop ends, in principle, after centuries. The compiler cannot
// know that, and the result is used, so the loop stays.
func spin(_ context.Context, input []byte) ([]byte, error) {
	x := uint64(len(input)) + 1
	for x != 0 {
		x = x*6364136223846793005 + 1442695040888963407
	}
	return strconv.AppendUint(nil, x, 10), nil
}

func main() {
	sdk.Run(spin)
}
