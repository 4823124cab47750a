// Command snapblock is the snapshot tests' block (host/snapshot_test.go).
// Each step reports what it sees of the state initialisation left and of
// its random sources. What its initialisation does is chosen by the name
// the block is loaded under, argv[0], since an initialisation has no
// input:
//
//	initlog     calls a blockhost host function (a log record)
//	initstderr  writes to standard error
//	initexit    exits with code 3
//	initbig     allocates 24 MiB
//	anything else: nothing more than the runtime's and packages' own.
//
//go:debug randseednop=0
package main

import (
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"math/rand"
	randv2 "math/rand/v2"
	"os"

	"github.com/blockhost/blockhost/sdk"
)

// Output is one step's report.
type Output struct {
	// Counter is how many steps this instance has run, counting this one.
	Counter int `json:"counter"`
	// InitValue was drawn from math/rand during initialisation.
	InitValue int64 `json:"init_value"`
	// Crypto, Math and MathV2 are drawn in the step.
	Crypto string `json:"crypto"`
	Math   int64  `json:"math"`
	MathV2 int64  `json:"math_v2"`
	// Big is the size of what initialisation allocated.
	Big int `json:"big"`
}

var (
	counter   int
	initValue = rand.Int63()
	big       []byte
)

func init() {
	switch os.Args[0] {
	case "initlog":
		sdk.Logger{}.Info("initialising")
	case "initstderr":
		os.Stderr.WriteString("initialising\n")
	case "initexit":
		os.Exit(3)
	case "initbig":
		big = make([]byte, 24<<20)
		for i := range big {
			big[i] = byte(i)
		}
	}
}

func main() {
	sdk.RunJSON(func(context.Context, struct{}) (Output, error) {
		counter++
		var b [16]byte
		crand.Read(b[:])
		return Output{Counter: counter, InitValue: initValue, Crypto: hex.EncodeToString(b[:]),
			Math: rand.Int63(), MathV2: randv2.Int64(), Big: len(big)}, nil
	})
}
