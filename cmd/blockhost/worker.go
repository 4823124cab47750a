package main

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2/hclsimple"
	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/urfave/cli/v2"

	"github.com/blockhost/blockhost/host/executor"
	"github.com/blockhost/blockhost/host/job"
	"github.com/blockhost/blockhost/host/worker"
)

// builtinJobTypes are the built-in blocks a worker runs without
// configuration, under the grants of its --allow-http, --allow-dir and
// --allow-sql flags (none by default: every request is denied).
var builtinJobTypes = []string{"http.request", "fs.blob_put", "fs.blob_get", "fs.put", "fs.get", "sql.query", "sql.exec", "human.approval"}

func workerCommand() *cli.Command {
	return &cli.Command{
		Name:  "worker",
		Usage: "run ExecAssignments from NATS JetStream and publish their ExecResults",
		Description: "Without --nats the worker embeds a nats-server with JetStream file storage under\n" +
			"--store, listening on --nats-listen so that more workers and `blockhost submit` can join.\n" +
			"Job types: the built-ins\n(" + strings.Join(builtinJobTypes, ", ") + ")\n" +
			"under the --allow-http, --allow-dir and --allow-sql grants, and each WebAssembly block\n" +
			"of --config (block \"TYPE\" { manifest = \"…\" sha256 = \"…\" }) or --block TYPE=PATH[@sha256:HEX].\n" +
			"human.approval waits, holding no slot, for a decision on caf.exec.approval.v1.decide.ID\n" +
			"(blockhost decide) or its deadline.\n" +
			"SIGTERM or Ctrl-C drains: no more fetching, running steps finish within --drain-timeout,\n" +
			"the rest is handed back. A second signal cancels the running steps and publishes their\n" +
			"cancelled results.",
		Flags: append([]cli.Flag{
			&cli.StringFlag{Name: "nats", Usage: "join the NATS server or cluster at `URL[,URL...]` instead of embedding one"},
			&cli.StringFlag{Name: "nats-listen", Value: "127.0.0.1:4222", Usage: "client address of the embedded server"},
			&cli.StringFlag{Name: "store", Usage: "JetStream storage `DIR` of the embedded server; by default blockhost/nats in the user's state directory"},
			&cli.BoolFlag{Name: "nats-sync-always", Usage: "the embedded server writes every message to disk before acknowledging it"},
			&cli.IntFlag{Name: "replicas", Value: 1, Usage: "replicas of the streams the worker creates (3 on a cluster)"},
			&cli.StringFlag{Name: "http", Value: "127.0.0.1:9090", Usage: "address of GET /_health and GET /metrics (\"off\": none)"},
			&cli.StringFlag{Name: "config", Usage: "worker configuration `FILE` (HCL): one block \"TYPE\" { manifest = \"…\" } per job type"},
			&cli.StringSliceFlag{Name: "block", Usage: "run job type `TYPE=PATH[@sha256:HEX]` from a module.wasm or manifest, pinned to the digest if given (repeatable)"},
			&cli.StringFlag{Name: "worker-id", Usage: "the worker's `ID`; by default the host name and process id"},
			&cli.IntFlag{Name: "concurrency", Aliases: []string{"c"}, Value: runtime.GOMAXPROCS(0) * 4, Usage: "steps running at once"},
			&cli.IntFlag{Name: "queue-size", Usage: "steps held waiting beyond those running"},
			&cli.IntFlag{Name: "tenant-limit", Usage: "most steps one tenant may hold (0: no limit); the rest wait in the stream"},
			&cli.DurationFlag{Name: "ack-wait", Value: worker.DefaultStreams.AckWait, Usage: "redeliver an assignment whose worker went silent this long"},
			&cli.IntFlag{Name: "max-deliver", Value: 5, Usage: "dead-letter an assignment delivered more often than this"},
			&cli.DurationFlag{Name: "heartbeat", Value: 5 * time.Second, Usage: "interval of heartbeats"},
			&cli.DurationFlag{Name: "drain-timeout", Value: 30 * time.Second, Usage: "how long a drain lets running steps finish"},
		}, stepFlags("worker")...),
		Action: workerAction,
	}
}

// workerFile is the --config file.
type workerFile struct {
	Blocks []struct {
		Type     string `hcl:"type,label"`
		Manifest string `hcl:"manifest,optional"`
		Module   string `hcl:"module,optional"`
		// SHA256 pins the module (job.Request.SHA256).
		SHA256 string `hcl:"sha256,optional"`
	} `hcl:"block,block"`
}

func workerAction(c *cli.Context) error {
	if c.NArg() > 0 {
		return usageErrorf("worker: unexpected arguments %v", c.Args().Slice())
	}
	logger, err := newLogger(c, streamsOf(c).err)
	if err != nil {
		return err
	}
	conc, queue := c.Int("concurrency"), c.Int("queue-size")
	if conc < 1 || queue < 0 || c.Int("tenant-limit") < 0 || c.Int("max-deliver") < 1 || c.Int("replicas") < 1 {
		return usageErrorf("invalid --concurrency %d, --queue-size %d, --tenant-limit %d, --max-deliver %d or --replicas %d",
			conc, queue, c.Int("tenant-limit"), c.Int("max-deliver"), c.Int("replicas"))
	}
	for _, f := range []string{"ack-wait", "heartbeat", "drain-timeout"} {
		if c.Duration(f) <= 0 {
			return usageErrorf("invalid --%s %s: must be positive", f, c.Duration(f))
		}
	}
	settings, err := stepSettings(c)
	if err != nil {
		return err
	}
	ctx := c.Context
	types, err := workerTypes(c)
	if err != nil {
		return err
	}

	// Steps go through the same request model as run and batch.
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	audit, err := openAuditLog(c)
	if err != nil {
		return err
	}
	svc, err := job.New(job.NewConfig().
		WithOverrides(settings).
		WithAuditLog(audit).
		WithCacheDir(cacheDir(c)).
		WithLogger(logger).
		WithPool(executor.PoolConfig{Concurrency: conc, QueueSize: queue, TenantLimit: c.Int("tenant-limit")}).
		WithExecutorConfig(executor.NewConfig().WithRegisterer(reg)).
		WithMaxInput(maxInput))
	if err != nil {
		return usageErrorf("%v", err)
	}
	defer svc.Close(context.WithoutCancel(ctx))
	blocks, err := worker.NewJobBlocks(ctx, svc, types)
	if err != nil {
		return usageErrorf("%v", err)
	}
	e := svc.Executor()

	// NATS: join, or embed a server.
	urls := c.String("nats")
	if urls == "" {
		store := c.String("store")
		if store == "" {
			if store, err = stateDir(); err != nil {
				return usageErrorf("no --store given and %v", err)
			}
		}
		srv, err := worker.StartServer(worker.ServerConfig{StoreDir: store, Listen: c.String("nats-listen"),
			SyncAlways: c.Bool("nats-sync-always"), Logger: logger})
		if err != nil {
			return usageErrorf("%v", err)
		}
		defer srv.Shutdown()
		urls = srv.ClientURL()
		logger.Info("embedded nats-server", "url", urls, "store", store)
	}
	nc, err := nats.Connect(urls, nats.Name("blockhost worker"), nats.MaxReconnects(-1), nats.ReconnectWait(250*time.Millisecond),
		nats.RetryOnFailedConnect(false),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) { logger.Warn("disconnected from NATS", "error", err) }),
		nats.ReconnectHandler(func(nc *nats.Conn) { logger.Info("reconnected to NATS", "url", nc.ConnectedUrl()) }))
	if err != nil {
		return &exitErr{code: exitError, msg: fmt.Sprintf("cannot connect to NATS at %s: %v", urls, err)}
	}
	defer nc.Close()

	wcfg := worker.NewConfig().WithID(c.String("worker-id")).WithVersion(buildVersion()).
		WithSlots(conc + queue).WithMaxDeliver(c.Int("max-deliver")).WithHeartbeat(c.Duration("heartbeat")).
		WithStreams(worker.Streams{Replicas: c.Int("replicas"), AckWait: c.Duration("ack-wait")}).
		WithLogger(logger).WithRegisterer(reg)
	w, err := worker.New(nc, e, blocks, wcfg)
	if err != nil {
		return usageErrorf("%v", err)
	}
	startCtx, cancelStart := context.WithTimeout(ctx, time.Minute)
	err = w.Start(startCtx)
	cancelStart()
	if err != nil {
		return &exitErr{code: exitError, msg: err.Error()}
	}

	if addr := c.String("http"); addr != "" && addr != "off" {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			_ = w.Shutdown(context.Background())
			return usageErrorf("invalid --http %q: %v", addr, err)
		}
		hs := &http.Server{Handler: w.Handler(reg), ReadHeaderTimeout: 10 * time.Second}
		go func() { _ = hs.Serve(ln) }()
		defer hs.Close()
		logger.Info("health and metrics", "url", "http://"+ln.Addr().String())
	}
	logger.Info("worker ready", "worker_id", w.ID(), "job_types", strings.Join(blocks.Types(), ","))

	// The first Ctrl-C or SIGTERM (main cancels ctx) drains; the second
	// cancels what runs.
	<-ctx.Done()
	logger.Info("draining", "cause", context.Cause(ctx), "drain_timeout", c.Duration("drain-timeout"))
	drainCtx, cancelDrain := context.WithTimeout(context.Background(), c.Duration("drain-timeout"))
	defer cancelDrain()
	done := make(chan error, 1)
	go func() { done <- w.Shutdown(drainCtx) }()
	second := secondInterrupt(ctx)
	for {
		select {
		case <-second:
			logger.Info("cancelling running steps")
			w.CancelRunning()
			second = nil
			continue
		case err := <-done:
			if err != nil {
				logger.Warn("drain timed out; running steps were handed back", "error", err)
			}
			if err := nc.Drain(); err == nil {
				for nc.IsDraining() {
					time.Sleep(10 * time.Millisecond)
				}
			}
			logger.Info("worker stopped")
			return nil
		}
	}
}

// workerTypes maps each job type to the request that names its block:
// the built-ins by name, then each block of --config and --block.
func workerTypes(c *cli.Context) (map[string]job.Request, error) {
	types := map[string]job.Request{}
	for _, name := range builtinJobTypes {
		types[name] = job.Request{Block: worker.BuiltinName(name)}
	}
	configured := map[string]bool{}
	add := func(where, jobType, path, pin string, module bool) error {
		if configured[jobType] {
			return usageErrorf("%s: job type %q is configured twice", where, jobType)
		}
		configured[jobType] = true
		pinnedBy := "--block flag"
		if where != "--block" {
			pinnedBy = "configuration " + where
		}
		if module || strings.HasSuffix(path, ".wasm") {
			types[jobType] = job.Request{Block: path, SHA256: pin, PinnedBy: pinnedBy}
		} else {
			types[jobType] = job.Request{Manifest: path, SHA256: pin, PinnedBy: pinnedBy}
		}
		return nil
	}
	if path := c.String("config"); path != "" {
		var f workerFile
		if err := hclsimple.DecodeFile(path, nil, &f); err != nil {
			return nil, usageErrorf("invalid --config: %v", err)
		}
		for _, b := range f.Blocks {
			if (b.Manifest == "") == (b.Module == "") {
				return nil, usageErrorf("invalid --config %s: block %q needs exactly one of manifest and module", path, b.Type)
			}
			p := b.Manifest + b.Module
			if !filepath.IsAbs(p) {
				p = filepath.Join(filepath.Dir(path), p)
			}
			pin, err := checkPin(b.SHA256)
			if err != nil {
				return nil, usageErrorf("invalid --config %s: block %q: sha256 %v", path, b.Type, err)
			}
			if err := add(path, b.Type, p, pin, b.Module != ""); err != nil {
				return nil, err
			}
		}
	}
	for _, s := range c.StringSlice("block") {
		t, p, ok := strings.Cut(s, "=")
		if !ok || t == "" || p == "" {
			return nil, usageErrorf("invalid --block %q: want TYPE=MODULE.wasm or TYPE=MANIFEST, optionally followed by @sha256:HEX", s)
		}
		p, pin, err := splitPin(p)
		if err != nil {
			return nil, usageErrorf("invalid --block %q: %v", s, err)
		}
		if p == "" {
			return nil, usageErrorf("invalid --block %q: no path before the pin", s)
		}
		if err := add("--block", t, p, pin, false); err != nil {
			return nil, err
		}
	}
	return types, nil
}

// splitPin splits a --block path "PATH@sha256:HEX" into PATH and the pin
// "sha256:hex". Only what follows the last '@' can be a pin, and only when
// it starts with an algorithm's name and a colon: "PATH@ALG:…"; any other
// '@' is part of the path. sha256 is the only algorithm.
func splitPin(s string) (path, pin string, err error) {
	i := strings.LastIndexByte(s, '@')
	if i < 0 {
		return s, "", nil
	}
	alg, _, ok := strings.Cut(s[i+1:], ":")
	if !ok || alg == "" || strings.Trim(strings.ToLower(alg), "abcdefghijklmnopqrstuvwxyz0123456789-") != "" {
		return s, "", nil
	}
	if !strings.EqualFold(alg, "sha256") {
		return "", "", fmt.Errorf("unknown digest algorithm %q in the pin %q: only sha256 is supported", alg, s[i+1:])
	}
	pin, err = checkPin(s[i+1:])
	if err != nil {
		return "", "", fmt.Errorf("the pin %v", err)
	}
	return s[:i], pin, nil
}

// checkPin checks a pin, "HEX" or "sha256:HEX", as job.Request.SHA256
// takes it, and returns it as "sha256:hex"; empty stays empty. It is
// checked here so that a bad pin stops the worker before it starts, rather
// than failing each of its jobs.
func checkPin(pin string) (string, error) {
	if pin == "" {
		return "", nil
	}
	h := pin
	if len(h) > len("sha256:") && strings.EqualFold(h[:len("sha256:")], "sha256:") {
		h = h[len("sha256:"):]
	}
	switch {
	case len(h) != 2*sha256.Size:
		return "", fmt.Errorf("%q is not a SHA-256 digest: %d characters, want 64 hexadecimal digits", pin, len(h))
	case strings.Trim(strings.ToLower(h), "0123456789abcdef") != "":
		return "", fmt.Errorf("%q is not a SHA-256 digest: want 64 hexadecimal digits (0-9, a-f)", pin)
	}
	return "sha256:" + strings.ToLower(h), nil
}

// stateDir is the embedded server's default store:
// $XDG_STATE_HOME/blockhost/nats, else ~/.local/state/blockhost/nats.
func stateDir() (string, error) {
	if d := os.Getenv("XDG_STATE_HOME"); d != "" {
		return filepath.Join(d, "blockhost", "nats"), nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", errors.New("the user's home directory is unknown")
	}
	return filepath.Join(home, ".local", "state", "blockhost", "nats"), nil
}
