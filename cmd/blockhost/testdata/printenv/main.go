// Command printenv is a WASI command fixture: it prints its environment and
// arguments as JSON, to show exactly what a step was granted.
package main

import (
	"encoding/json"
	"os"
)

func main() {
	env := os.Environ()
	if env == nil {
		env = []string{}
	}
	_ = json.NewEncoder(os.Stdout).Encode(map[string]any{"env": env, "args": os.Args})
}
