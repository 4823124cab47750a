// Command vowels is the Go guest of the Extism comparison written for
// blockhost: the work of the go-sdk's count_vowels_std plugin (count the
// vowels of the input) as a block built with blockhost's SDK, the way a
// block author writes it. Built as a reactor, blockhost starts every step
// from a snapshot taken after the Go runtime's initialisation.
package main

import (
	"context"
	"strings"

	"github.com/blockhost/blockhost/sdk"
)

// Input is the step's input.
type Input struct {
	Text string `json:"text"`
}

// Output is the step's output.
type Output struct {
	Count int `json:"count"`
}

func count(_ context.Context, in Input) (Output, error) {
	n := 0
	for _, r := range in.Text {
		if strings.ContainsRune("aeiouAEIOU", r) {
			n++
		}
	}
	return Output{Count: n}, nil
}

func main() {
	sdk.RunJSON(count)
}
