package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/urfave/cli/v2"
)

func buildCommand() *cli.Command {
	return &cli.Command{
		Name:      "build",
		Usage:     "build a Go block for WebAssembly (GOOS=wasip1 GOARCH=wasm go build)",
		ArgsUsage: "DIR",
		Description: "A package that uses the blockhost SDK is built as a reactor (-buildmode=c-shared):\n" +
			"the host can then run its initialisation once and start every step from a snapshot\n" +
			"(docs/abi.md §2.1). --command builds it as a WASI command instead, as plain\n" +
			"go build does; a package without the SDK is always built as a command.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Usage: "output `FILE` (default DIR's name with .wasm, in the current directory)"},
			&cli.BoolFlag{Name: "command", Usage: "build a WASI command (_start) even when the package uses the SDK"},
		},
		Action: func(c *cli.Context) error {
			// -o may also follow DIR, as with go build.
			out, command := c.String("output"), c.Bool("command")
			var rest []string
			args := c.Args().Slice()
			for i := 0; i < len(args); i++ {
				switch a := args[i]; {
				case a == "-o" || a == "--output":
					if i+1 == len(args) {
						return usageErrorf("build: %s needs a file name", a)
					}
					out = args[i+1]
					i++
				case strings.HasPrefix(a, "-o=") || strings.HasPrefix(a, "--output="):
					_, out, _ = strings.Cut(a, "=")
				case a == "--command" || a == "-command":
					command = true
				default:
					rest = append(rest, a)
				}
			}
			if len(rest) != 1 {
				return usageErrorf("build: want exactly one package directory (usage: blockhost build DIR [-o OUT.wasm])")
			}
			dir := rest[0]
			abs, err := filepath.Abs(dir)
			if err != nil {
				return usageErrorf("build: %v", err)
			}
			if fi, err := os.Stat(abs); err != nil || !fi.IsDir() {
				return usageErrorf("build: %s is not a directory", dir)
			}
			if out == "" {
				out = strings.TrimSuffix(filepath.Base(abs), ".wasm") + ".wasm"
			}
			outAbs, err := filepath.Abs(out)
			if err != nil {
				return usageErrorf("build: %v", err)
			}
			goCmd, err := exec.LookPath("go")
			if err != nil {
				return usageErrorf("build: the go command was not found on PATH; install Go 1.26 or later")
			}
			env := append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm", "CGO_ENABLED=0")
			s := streamsOf(c)
			buildArgs := []string{"build", "-trimpath", "-o", outAbs}
			if !command {
				reactor, err := usesSDK(c.Context, goCmd, abs, env)
				if err != nil {
					s.err.Write([]byte(err.Error()))
					return &exitErr{code: exitError, msg: "build: go list failed in " + dir}
				}
				if reactor {
					buildArgs = append(buildArgs, "-buildmode=c-shared")
				}
			}
			cmd := exec.CommandContext(c.Context, goCmd, append(buildArgs, ".")...)
			cmd.Dir = abs
			cmd.Env = env
			cmd.Stdout, cmd.Stderr = s.err, s.err
			if err := cmd.Run(); err != nil {
				var ee *exec.ExitError
				if errors.As(err, &ee) {
					return &exitErr{code: exitError, msg: "build: go build failed in " + dir}
				}
				return &exitErr{code: exitError, msg: "build: " + err.Error()}
			}
			_, err = s.out.Write([]byte(out + "\n"))
			return err
		},
	}
}

// sdkPackage is the package whose use makes a block a reactor.
const sdkPackage = modulePath + "/sdk"

// usesSDK reports whether the main package in dir depends on the SDK, as
// the go command resolves it for wasip1: such a block has the SDK's
// reactor entry (blockhost_run), so it can be built with
// -buildmode=c-shared. A block without it would have no entry point as a
// reactor.
func usesSDK(ctx context.Context, goCmd, dir string, env []string) (bool, error) {
	cmd := exec.CommandContext(ctx, goCmd, "list", "-deps", "-f", "{{.ImportPath}}", ".")
	cmd.Dir, cmd.Env = dir, env
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return false, fmt.Errorf("%s%w\n", stderr.Bytes(), err)
	}
	for line := range bytes.Lines(out) {
		if string(bytes.TrimSpace(line)) == sdkPackage {
			return true, nil
		}
	}
	return false, nil
}
