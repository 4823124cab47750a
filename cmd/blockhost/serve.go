package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/urfave/cli/v2"

	"github.com/blockhost/blockhost/host/manifest"
	"github.com/blockhost/blockhost/host/serve"
)

func serveCommand() *cli.Command {
	return &cli.Command{
		Name:  "serve",
		Usage: "serve an HTTP API for steps, the human.approval block and a status page",
		Description: "Runs the blocks of the catalog in --config through the executor, keeps steps, results and\n" +
			"pending approvals in SQLite under --store, and serves the API and the status page on --listen.\n" +
			"SIGINT or SIGTERM drains: running steps get --drain-timeout to finish, then are handed back.\n" +
			"See docs/serve.md.",
		Flags: append([]cli.Flag{
			&cli.StringFlag{Name: "listen", Value: serve.DefaultListen, Usage: "`ADDRESS` to serve on"},
			&cli.StringFlag{Name: "config", Aliases: []string{"c"}, Usage: "server configuration `FILE` (HCL, or JSON by .json): catalog, pools, tenants"},
			&cli.StringFlag{Name: "store", Usage: "`DIR` of the durable state; by default blockhost/serve in the user state directory"},
			&cli.BoolFlag{Name: "insecure-local", Usage: "let requests without a token act as tenant local (loopback --listen only)"},
			&cli.DurationFlag{Name: "drain-timeout", Value: serve.DefaultDrainTimeout, Usage: "how long running steps may finish at shutdown"},
			&cli.StringFlag{Name: "max-body", Value: "1MiB", Usage: "largest request body"},
			&cli.DurationFlag{Name: "max-wait", Value: serve.DefaultMaxWait, Usage: "longest ?wait= a request may ask for"},
			&cli.DurationFlag{Name: "retention", Value: serve.DefaultRetention, Usage: "delete finished steps this long after they end (-1s: never)"},
			&cli.StringFlag{Name: "engine", Usage: "WebAssembly engine (default wazero)"},
			&cli.StringSliceFlag{Name: "trusted-key", Usage: "serve only manifests signed by this public key `FILE` (repeatable)"},
		}, append(cacheFlags(), auditLogFlags()...)...),
		Action: serveAction,
	}
}

func serveAction(c *cli.Context) error {
	if c.NArg() > 0 {
		return usageErrorf("serve: unexpected arguments %v (the catalog comes from --config)", c.Args().Slice())
	}
	logger, err := newLogger(c, streamsOf(c).err)
	if err != nil {
		return err
	}
	maxBody, err := manifest.ParseSize(c.String("max-body"))
	if err != nil || maxBody < 1024 || maxBody > 1<<30 {
		return usageErrorf("invalid --max-body %q: want a size from 1KiB to 1GiB, such as 1MiB", c.String("max-body"))
	}
	if d := c.Duration("drain-timeout"); d < 0 {
		return usageErrorf("invalid --drain-timeout %s: must not be negative", d)
	}
	if d := c.Duration("max-wait"); d <= 0 {
		return usageErrorf("invalid --max-wait %s: must be positive", d)
	}
	store := c.String("store")
	if store == "" {
		if store, err = defaultStoreDir(); err != nil {
			return usageErrorf("no --store given and %v", err)
		}
	}
	cfg := serve.NewConfig().WithStoreDir(store).WithInsecureLocal(c.Bool("insecure-local")).
		WithMaxBody(int64(maxBody)).WithMaxWait(c.Duration("max-wait")).WithRetention(c.Duration("retention")).WithEngine(c.String("engine")).
		WithCacheDir(cacheDir(c)).WithLogger(logger)
	if paths := c.StringSlice("trusted-key"); len(paths) > 0 {
		keys, err := trustedKeys(paths)
		if err != nil {
			return err
		}
		cfg = cfg.WithTrustedKeys(keys)
	}
	audit, err := openAuditLog(c)
	if err != nil {
		return err
	}
	cfg = cfg.WithAuditLog(audit)
	if path := c.String("config"); path != "" {
		f, err := serve.ParseFile(path)
		if err != nil {
			return usageErrorf("%v", err)
		}
		cfg = cfg.WithFile(f)
	}

	ln, err := net.Listen("tcp", c.String("listen"))
	if err != nil {
		return usageErrorf("invalid --listen %q: %v", c.String("listen"), err)
	}
	defer ln.Close()
	if a, ok := ln.Addr().(*net.TCPAddr); c.Bool("insecure-local") && (!ok || !a.IP.IsLoopback()) {
		return usageErrorf("invalid --listen %q: --insecure-local serves only this machine; listen on a loopback address such as 127.0.0.1:8080", c.String("listen"))
	}
	srv, err := serve.New(c.Context, cfg)
	if err != nil {
		return usageErrorf("%v", err)
	}

	ctx, stop := signal.NotifyContext(c.Context, os.Interrupt, syscall.SIGTERM)
	defer stop()
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	logger.Info("serving", "address", "http://"+ln.Addr().String(), "store", store, "insecure_local", c.Bool("insecure-local"))
	select {
	case err = <-served:
		// Serve failed before any shutdown: a refused listener.
	case <-ctx.Done():
		logger.Info("draining", "drain_timeout", c.Duration("drain-timeout"))
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.Duration("drain-timeout"))
		defer cancel()
		err = srv.Shutdown(dctx)
		if serr := <-served; !errors.Is(serr, http.ErrServerClosed) && err == nil {
			err = serr
		}
		logger.Info("stopped")
		return nil
	}
	_ = srv.Shutdown(context.Background())
	if errors.Is(err, serve.ErrInvalidConfig) {
		return usageErrorf("%v", err)
	}
	return &exitErr{code: exitError, msg: fmt.Sprintf("serve: %v", err)}
}

// defaultStoreDir is blockhost/serve under $XDG_STATE_HOME, or
// ~/.local/state.
func defaultStoreDir() (string, error) {
	if d := os.Getenv("XDG_STATE_HOME"); d != "" {
		return filepath.Join(d, "blockhost", "serve"), nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("no home directory: %w", err)
	}
	return filepath.Join(home, ".local", "state", "blockhost", "serve"), nil
}
