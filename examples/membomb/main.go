// Command membomb is a block that allocates memory until the runtime
// fails: it keeps every 1 MiB slice it makes and writes to each of its
// pages, so the memory is really used. Under a memory cap the host refuses
// to grow linear memory, the Go runtime dies, and the step ends as error
// quota_exceeded.
package main

import (
	"context"

	"github.com/blockhost/blockhost/sdk"
)

const chunk = 1 << 20

// hoard keeps every chunk reachable, so the garbage collector frees none.
var hoard [][]byte

func bomb(_ context.Context, _ []byte) ([]byte, error) {
	log := sdk.Logger{}
	for {
		b := make([]byte, chunk)
		for i := 0; i < len(b); i += 4096 {
			b[i] = byte(i>>12) | 1
		}
		hoard = append(hoard, b)
		if n := len(hoard); n%8 == 0 {
			log.Info("allocated", "mib", n)
		}
	}
}

func main() {
	sdk.Run(bomb)
}
