package main

import (
	"context"
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/urfave/cli/v2"

	"github.com/blockhost/blockhost/abi"
	"github.com/blockhost/blockhost/host/engine"
)

func versionCommand() *cli.Command {
	return &cli.Command{
		Name:  "version",
		Usage: "print the blockhost version, the ABI version and the engines",
		Action: func(c *cli.Context) error {
			w := streamsOf(c).out
			fmt.Fprintf(w, "blockhost %s\n", buildVersion())
			fmt.Fprintf(w, "abi v%d\n", abi.Version)
			fmt.Fprintf(w, "go %s %s/%s\n", runtime.Version(), runtime.GOOS, runtime.GOARCH)
			for _, name := range engine.Names() {
				f, _ := engine.Lookup(name)
				v := "unavailable"
				if e, err := f(context.Background(), engine.Config{}); err == nil {
					v = e.Version()
					_ = e.Close(context.Background())
				}
				fmt.Fprintf(w, "engine %s %s\n", name, v)
			}
			return nil
		},
	}
}

func buildVersion() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "devel"
}
