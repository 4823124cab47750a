package manifest_test

import (
	"errors"
	"fmt"

	"github.com/blockhost/blockhost/host/manifest"
)

func Example() {
	src := []byte(`
block "hello" {
  module = "hello.wasm"
  args   = ["--verbose"]
  limits {
    timeout = "5s"
    memory  = "64MiB"
  }
  capabilities {
    env = { GREETING = "hi" }
  }
}
`)
	m, err := manifest.Parse(src, "blocks/hello.hcl")
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("name:", m.Name)
	fmt.Println("module:", m.Module)
	fmt.Println("args:", m.Args)
	fmt.Println("timeout:", m.Limits.Timeout)
	fmt.Println("memory:", m.Limits.Memory)
	fmt.Println("output set:", m.Limits.Output != 0)
	fmt.Println("env:", m.Env)
	// Output:
	// name: hello
	// module: blocks/hello.wasm
	// args: [--verbose]
	// timeout: 5s
	// memory: 67108864
	// output set: false
	// env: map[GREETING:hi]
}

func ExampleParse_error() {
	src := []byte(`block "hello" {
  module = "hello.wasm"
  limits {
    timeout = "5 seconds"
    memory  = "12QB"
  }
}
`)
	_, err := manifest.Parse(src, "hello.hcl")
	fmt.Println(err)

	var merr *manifest.Error
	if errors.Is(err, manifest.ErrInvalid) && errors.As(err, &merr) {
		d := merr.Diagnostics[0]
		fmt.Printf("first problem at line %d, column %d\n", d.Line, d.Column)
	}
	// Output:
	// hello.hcl:4:15: Invalid timeout: "5 seconds" is not a duration; use Go duration syntax such as "500ms", "5s" or "1m30s".
	// hello.hcl:5:15: Invalid memory limit: invalid size "12QB": unknown unit "QB"; use a number of bytes with an optional unit: B, KB, MB, GB, KiB, MiB or GiB.
	// first problem at line 4, column 15
}

func ExampleParseSize() {
	for _, s := range []string{"64KiB", "1MB", "4096", "12QB"} {
		n, err := manifest.ParseSize(s)
		fmt.Println(n, err)
	}
	// Output:
	// 65536 <nil>
	// 1000000 <nil>
	// 4096 <nil>
	// 0 invalid size "12QB": unknown unit "QB"
}
