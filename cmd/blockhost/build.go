package main

import (
	"errors"
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
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Usage: "output `FILE` (default DIR's name with .wasm, in the current directory)"},
		},
		Action: func(c *cli.Context) error {
			// -o may also follow DIR, as with go build.
			out := c.String("output")
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
			cmd := exec.CommandContext(c.Context, goCmd, "build", "-trimpath", "-o", outAbs, ".")
			cmd.Dir = abs
			cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm", "CGO_ENABLED=0")
			s := streamsOf(c)
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
