package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"
	"golang.org/x/term"

	"github.com/blockhost/blockhost/abi"
	"github.com/blockhost/blockhost/host"
	"github.com/blockhost/blockhost/host/executor"
	"github.com/blockhost/blockhost/host/manifest"
)

// maxLine caps one request line: its input is limited like run's.
const maxLine = maxInput + 1<<20

func batchCommand() *cli.Command {
	return &cli.Command{
		Name:      "batch",
		Usage:     "run many steps from a JSONL file through the executor; one result per line",
		ArgsUsage: "FILE.jsonl|-",
		Description: "Each line of FILE (or standard input for -) is one step request, such as\n" +
			`  {"step_id":"a1","block":"hello.wasm","input":{"name":"ana"},"priority":"high","retry":{"max_attempts":5}}` + "\n" +
			"(see docs/cli.md for every field). Results are written as JSON lines, in the order steps finish.\n" +
			"Ctrl-C cancels what is queued and running; every line still gets a result. A second Ctrl-C stops reading input.\n" +
			"Exit codes: 0 every step succeeded, 1 some did not, 130 interrupted, 2 bad usage.",
		Flags: append([]cli.Flag{
			&cli.IntFlag{Name: "concurrency", Aliases: []string{"c"}, Value: runtime.GOMAXPROCS(0), Usage: "steps running at once"},
			&cli.IntFlag{Name: "queue-size", Value: 64, Usage: "steps queued beyond those running"},
			&cli.IntFlag{Name: "tenant-limit", Usage: "most steps one tenant_id may hold queued or running (0: no limit)"},
			&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Usage: "write results to `FILE` instead of standard output"},
			&cli.DurationFlag{Name: "timeout", Usage: "attempt timeout of steps that set none (default 30s)"},
			&cli.DurationFlag{Name: "queue-timeout", Usage: "longest wait for a first attempt (default 1m)"},
			&cli.StringFlag{Name: "engine", Usage: "WebAssembly engine (default wazero)"},
			&cli.BoolFlag{Name: "no-progress", Usage: "no progress bar, even on a terminal"},
		}, append(cacheFlags(), retryFlags()...)...),
		Action: batchAction,
	}
}

// batchRequest is one line of a batch file.
type batchRequest struct {
	StepID         string            `json:"step_id"`
	Block          string            `json:"block"`
	Manifest       string            `json:"manifest"`
	Input          json.RawMessage   `json:"input"`
	InputText      *string           `json:"input_text"`
	InputBase64    []byte            `json:"input_base64"`
	Args           []string          `json:"args"`
	Env            map[string]string `json:"env"`
	Priority       json.RawMessage   `json:"priority"`
	Timeout        jsonDuration      `json:"timeout"`
	TotalDeadline  jsonDuration      `json:"total_deadline"`
	QueueTimeout   jsonDuration      `json:"queue_timeout"`
	Retry          *batchRetry       `json:"retry"`
	TenantID       string            `json:"tenant_id"`
	TraceID        string            `json:"trace_id"`
	RunID          string            `json:"run_id"`
	FlowID         string            `json:"flow_id"`
	IdempotencyKey string            `json:"idempotency_key"`
	Dependency     string            `json:"dependency"`
}

type batchRetry struct {
	MaxAttempts       int          `json:"max_attempts"`
	BackoffInitial    jsonDuration `json:"backoff_initial"`
	BackoffMultiplier float64      `json:"backoff_multiplier"`
	BackoffMax        jsonDuration `json:"backoff_max"`
	NonRetryable      []abi.Code   `json:"non_retryable"`
}

// jsonDuration reads "1.5s" or a number of milliseconds.
type jsonDuration time.Duration

func (d *jsonDuration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		v, err := time.ParseDuration(s)
		if err != nil || v <= 0 {
			return fmt.Errorf("%q is not a positive duration such as \"500ms\" or \"5s\"", s)
		}
		*d = jsonDuration(v)
		return nil
	}
	var ms float64
	if err := json.Unmarshal(b, &ms); err != nil || ms <= 0 {
		return fmt.Errorf("%s is not a duration: use a string such as \"5s\" or a positive number of milliseconds", b)
	}
	*d = jsonDuration(ms * float64(time.Millisecond))
	return nil
}

// batch is the state of one `blockhost batch` run.
type batch struct {
	c        *cli.Context
	ctx      context.Context
	e        *executor.Executor
	defaults retrySettings
	timeout  time.Duration
	source   string // names lines in default step IDs
	cacheDir string
	engine   string

	loadMu   sync.Mutex
	runtimes map[string]*host.Runtime
	runners  map[string]loaded

	outMu  sync.Mutex
	out    *bufio.Writer
	outErr error

	countMu  sync.Mutex
	byStatus map[abi.Status]int
	byCode   map[abi.Code]int
	attempts int
	retries  int
	lines    int
	total    int // lines in the input file, when known, for the progress bar
}

type loaded struct {
	runner host.Runner
	spec   *runSpec
	err    error
}

func batchAction(c *cli.Context) error {
	switch {
	case c.NArg() == 0:
		return usageErrorf("batch: no FILE.jsonl or - given (usage: blockhost batch [flags] FILE.jsonl|-)")
	case c.NArg() > 1:
		return usageErrorf("batch: unexpected arguments after %s: %v (flags come before the file)", c.Args().First(), c.Args().Tail())
	}
	logger, err := newLogger(c)
	if err != nil {
		return err
	}
	conc, queue := c.Int("concurrency"), c.Int("queue-size")
	if conc < 1 || queue < 0 || c.Int("tenant-limit") < 0 {
		return usageErrorf("invalid --concurrency %d, --queue-size %d or --tenant-limit %d: need at least 1, 0 and 0", conc, queue, c.Int("tenant-limit"))
	}
	defaults, err := retryFromFlags(c, manifest.Schedule{})
	if err != nil {
		return err
	}
	for _, f := range []string{"timeout", "queue-timeout"} {
		if c.IsSet(f) && c.Duration(f) <= 0 {
			return usageErrorf("invalid --%s %s: must be positive", f, c.Duration(f))
		}
	}

	var in io.Reader
	source := "stdin"
	if path := c.Args().First(); path == "-" {
		in = streamsOf(c).in
	} else {
		f, err := os.Open(path)
		if err != nil {
			return usageErrorf("cannot read batch file: %v", err)
		}
		defer f.Close()
		in, source = f, filepath.Base(path)
	}
	out := streamsOf(c).out
	if path := c.String("output"); path != "" && path != "-" {
		f, err := os.Create(path)
		if err != nil {
			return usageErrorf("cannot write --output: %v", err)
		}
		defer f.Close()
		out = f
	}

	e, err := executor.New(executor.NewConfig().
		WithPool(executor.DefaultPool, executor.PoolConfig{Concurrency: conc, QueueSize: queue, TenantLimit: c.Int("tenant-limit")}).
		WithRetryPolicy(defaults.policy).
		WithTotalDeadline(defaults.totalDeadline).
		WithQueueTimeout(c.Duration("queue-timeout")).
		WithAttemptTimeout(c.Duration("timeout")).
		WithLogger(logger))
	if err != nil {
		return usageErrorf("%v", err)
	}

	// The first Ctrl-C or SIGTERM cancels every step; the second stops
	// reading input too.
	ctx, cancel := context.WithCancelCause(c.Context)
	defer cancel(nil)
	readCtx, stopReading := context.WithCancel(context.Background())
	defer stopReading()
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sigs)
	go func() {
		select {
		case sig := <-sigs:
			cancel(fmt.Errorf("%w: received %v", host.ErrCancelled, sig))
		case <-ctx.Done():
			return
		}
		select {
		case <-sigs:
			stopReading()
		case <-readCtx.Done():
		}
	}()

	b := &batch{
		c: c, ctx: ctx, e: e, defaults: defaults, timeout: c.Duration("timeout"), source: source,
		engine: c.String("engine"), runtimes: map[string]*host.Runtime{}, runners: map[string]loaded{},
		out: bufio.NewWriter(out), byStatus: map[abi.Status]int{}, byCode: map[abi.Code]int{},
	}
	b.cacheDir = cacheDir(c)
	defer func() {
		for _, rt := range b.runtimes {
			rt.Close(context.Background())
		}
	}()

	if path := c.Args().First(); path != "-" && !c.Bool("no-progress") {
		b.total = countLines(path)
	}
	start := time.Now()
	stopProgress := b.progress(start)
	readErr := b.feed(readCtx, in, conc+queue)
	b.e.Close(context.Background())
	stopProgress()
	b.outMu.Lock()
	if err := b.out.Flush(); err != nil && b.outErr == nil {
		b.outErr = err
	}
	b.outMu.Unlock()
	b.summary(streamsOf(c).err, time.Since(start))

	switch {
	case b.outErr != nil:
		return &exitErr{code: exitError, msg: "writing results: " + b.outErr.Error()}
	case readErr != nil:
		return &exitErr{code: exitUsage, msg: readErr.Error()}
	case ctx.Err() != nil:
		return &exitErr{code: exitCancelled}
	case b.byStatus[abi.StatusSuccess] != b.lines:
		return &exitErr{code: exitError}
	}
	return nil
}

// feed reads requests and submits them, holding at most capacity in the
// executor at once so that none is refused for a full queue, and returns
// once every submitted step has its result written.
func (b *batch) feed(readCtx context.Context, in io.Reader, capacity int) error {
	slots := make(chan struct{}, capacity)
	var wg sync.WaitGroup
	defer wg.Wait()
	r := bufio.NewReaderSize(in, 64<<10)
	for n := 1; ; n++ {
		if readCtx.Err() != nil {
			return nil
		}
		line, err := readLine(r)
		if len(bytes.TrimSpace(line)) > 0 {
			b.countLine()
			req, bad := b.request(line, n)
			if bad != nil {
				b.write(bad)
			} else {
				slot := false
				select {
				case slots <- struct{}{}:
					slot = true
				case <-b.ctx.Done():
					// Cancelled: the step ends at once, needing no slot.
				}
				t := b.e.Submit(b.ctx, req)
				wg.Go(func() {
					b.write(t.Result())
					if slot {
						<-slots
					}
				})
			}
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("reading %s at line %d: %v", b.source, n, err)
		}
	}
}

// readLine returns the next line without its newline, at most maxLine
// bytes of it; a longer line comes back cut, and request reports it.
func readLine(r *bufio.Reader) ([]byte, error) {
	var line []byte
	for {
		chunk, err := r.ReadSlice('\n')
		if len(line) <= maxLine {
			line = append(line, chunk...)
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		return bytes.TrimRight(line, "\r\n"), err
	}
}

// request turns one line into an executor request, or into the result
// that says why it cannot run.
func (b *batch) request(line []byte, n int) (executor.Request, *abi.StepResult) {
	id := fmt.Sprintf("%s:%d", b.source, n)
	fail := func(code abi.Code, format string, args ...any) (executor.Request, *abi.StepResult) {
		return executor.Request{}, &abi.StepResult{StepID: id, Status: abi.StatusError,
			Error: abi.NewError(code, abi.ClassPermanent, fmt.Sprintf("line %d: ", n)+fmt.Sprintf(format, args...))}
	}
	if len(line) > maxLine {
		return fail(abi.CodeInvalidInput, "longer than %d MiB", maxLine>>20)
	}
	var br batchRequest
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&br); err != nil {
		return fail(abi.CodeInvalidFormat, "not a step request: %v", err)
	}
	if br.StepID != "" {
		id = br.StepID
	}
	if (br.Block == "") == (br.Manifest == "") {
		return fail(abi.CodeMissingRequiredField, `give exactly one of "block" (a module path or built-in name) and "manifest"`)
	}
	l := b.load(br.Block, br.Manifest)
	if l.err != nil {
		r, res := fail(abi.CodeInvalidInput, "%s", strings.TrimPrefix(l.err.Error(), "blockhost: "))
		res.Block = br.Block
		return r, res
	}
	step := host.Step{ID: id, Args: l.spec.args, Grants: l.spec.grants, Limits: l.spec.limits,
		Function: l.spec.function, Config: l.spec.config}
	switch {
	case br.InputText != nil:
		step.Input = []byte(*br.InputText)
	case br.InputBase64 != nil:
		step.Input = br.InputBase64
	case len(br.Input) > 0:
		step.Input = br.Input
	}
	if len(step.Input) > maxInput {
		return fail(abi.CodeInvalidInput, "input is larger than %d MiB", maxInput>>20)
	}
	if br.Args != nil {
		step.Args = br.Args
	}
	if len(br.Env) > 0 {
		env := map[string]string{}
		for k, v := range step.Grants.Env {
			env[k] = v
		}
		for k, v := range br.Env {
			if !validEnvName(k) || strings.ContainsRune(v, 0) {
				return fail(abi.CodeInvalidInput, "invalid env %q", k)
			}
			env[k] = v
		}
		step.Grants.Env = env
	}
	if br.Timeout > 0 {
		step.Limits.Timeout = time.Duration(br.Timeout)
	}

	// The line's settings over the manifest's over the flags'.
	rs := b.defaults
	if l.spec.manifest != nil {
		m := scheduleSettings(l.spec.manifest.Schedule)
		m.policy = m.policy.Or(rs.policy)
		rs.policy = m.policy
		rs.totalDeadline = cmpDur(m.totalDeadline, rs.totalDeadline)
		rs.queueTimeout = cmpDur(m.queueTimeout, rs.queueTimeout)
		rs.priority = m.priority
	}
	if br.Retry != nil {
		line := executor.RetryPolicy{MaxAttempts: br.Retry.MaxAttempts, Initial: time.Duration(br.Retry.BackoffInitial),
			Multiplier: br.Retry.BackoffMultiplier, MaxInterval: time.Duration(br.Retry.BackoffMax), NonRetryable: br.Retry.NonRetryable}
		rs.policy = line.Or(rs.policy)
	}
	if err := rs.policy.Or(executor.DefaultRetryPolicy).Validate(); err != nil {
		return fail(abi.CodeInvalidInput, "%v", err)
	}
	if len(br.Priority) > 0 {
		var s string
		if json.Unmarshal(br.Priority, &s) != nil {
			s = string(br.Priority)
		}
		p, err := executor.ParsePriority(s)
		if err != nil {
			return fail(abi.CodeInvalidInput, "%v", err)
		}
		rs.priority = p
	}
	return executor.Request{
		Runner: l.runner, Step: step, Priority: rs.priority, Retry: rs.policy,
		TotalDeadline: cmpDur(time.Duration(br.TotalDeadline), rs.totalDeadline),
		QueueTimeout:  cmpDur(time.Duration(br.QueueTimeout), rs.queueTimeout),
		TenantID:      br.TenantID, TraceID: br.TraceID, RunID: br.RunID, FlowID: br.FlowID,
		IdempotencyKey: br.IdempotencyKey, Dependency: br.Dependency,
	}, nil
}

func cmpDur(a, b time.Duration) time.Duration {
	if a != 0 {
		return a
	}
	return b
}

// load returns the runner for a module path, built-in name or manifest,
// loading each once.
func (b *batch) load(block, manifestPath string) loaded {
	key := "block:" + block
	if manifestPath != "" {
		key = "manifest:" + manifestPath
	}
	b.loadMu.Lock()
	defer b.loadMu.Unlock()
	if l, ok := b.runners[key]; ok {
		return l
	}
	l := b.loadLocked(block, manifestPath)
	b.runners[key] = l
	return l
}

func (b *batch) loadLocked(block, manifestPath string) loaded {
	spec := &runSpec{engine: b.engine, cacheDir: b.cacheDir}
	if manifestPath != "" {
		m, err := manifest.ParseFile(manifestPath)
		if err != nil {
			return loaded{err: err}
		}
		spec.name, spec.module, spec.args, spec.grants.Env, spec.manifest = m.Name, m.Module, m.Args, m.Env, m
		spec.function, spec.config = m.Function, m.Config
		if m.Engine != "" {
			spec.engine = m.Engine
		}
		spec.limits = host.Limits{Timeout: m.Limits.Timeout, Memory: m.Limits.Memory, Output: m.Limits.Output, Log: m.Limits.Log}
		// The manifest's grants, as `run --manifest` applies them; the
		// batch command has none of run's grant flags.
		for _, o := range runOptions {
			if err := o.apply(b.c, spec); err != nil {
				return loaded{err: err}
			}
		}
	} else {
		spec.module = block
		spec.name = strings.TrimSuffix(filepath.Base(block), ".wasm")
	}
	rt, err := b.runtime(spec.engine)
	if err != nil {
		return loaded{err: err}
	}
	runner, err := loadRunner(b.ctx, rt, spec)
	return loaded{runner: runner, spec: spec, err: err}
}

func (b *batch) runtime(engine string) (*host.Runtime, error) {
	if rt, ok := b.runtimes[engine]; ok {
		return rt, nil
	}
	logger, _ := newLogger(b.c)
	cfg := host.NewRuntimeConfig().WithLogger(logger).WithCacheDir(b.cacheDir)
	if engine != "" {
		cfg = cfg.WithEngine(engine)
	}
	rt, err := host.NewRuntime(context.Background(), cfg)
	if err != nil {
		return nil, err
	}
	b.runtimes[engine] = rt
	return rt, nil
}

func (b *batch) countLine() {
	b.countMu.Lock()
	b.lines++
	b.countMu.Unlock()
}

// write writes one result line and counts it.
func (b *batch) write(res *abi.StepResult) {
	line, err := json.Marshal(res)
	b.outMu.Lock()
	if err == nil && b.outErr == nil {
		line = append(line, '\n')
		if _, err = b.out.Write(line); err == nil {
			err = b.out.Flush()
		}
	}
	if err != nil && b.outErr == nil {
		b.outErr = err
	}
	b.outMu.Unlock()
	b.countMu.Lock()
	b.byStatus[res.Status]++
	if res.Error != nil {
		b.byCode[res.Error.Code]++
	}
	b.attempts += res.Attempts
	b.retries += res.RetriesUsed
	b.countMu.Unlock()
}

// progress draws a one-line progress bar on standard error while the
// batch runs, when standard error is a terminal. It returns the function
// that stops it and clears the line.
func (b *batch) progress(start time.Time) func() {
	f, ok := streamsOf(b.c).err.(*os.File)
	if b.c.Bool("no-progress") || !ok || !term.IsTerminal(int(f.Fd())) {
		return func() {}
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		tick := time.NewTicker(200 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-done:
				fmt.Fprint(f, "\r\033[K")
				return
			case <-tick.C:
				fmt.Fprint(f, "\r\033[K"+b.progressLine(f, start))
			}
		}
	})
	return func() {
		close(done)
		wg.Wait()
	}
}

func (b *batch) progressLine(f *os.File, start time.Time) string {
	b.countMu.Lock()
	finished := 0
	for _, n := range b.byStatus {
		finished += n
	}
	read := b.lines
	of := read
	if b.total > 0 {
		of = b.total
	}
	counts := fmt.Sprintf(" %d/%d  ok %d  error %d  timeout %d  cancelled %d", finished, of,
		b.byStatus[abi.StatusSuccess], b.byStatus[abi.StatusError], b.byStatus[abi.StatusTimeout], b.byStatus[abi.StatusCancelled])
	b.countMu.Unlock()
	s, _ := b.e.Stats(executor.DefaultPool)
	counts += fmt.Sprintf("  run %d  queue %d  %.0f/s", s.InFlight, s.Queued, float64(finished)/max(time.Since(start).Seconds(), 1e-3))
	width, _, err := term.GetSize(int(f.Fd()))
	if err != nil || width <= 0 {
		width = 80
	}
	if len(counts) > width-1 {
		return counts[:width-1]
	}
	barWidth := min(width-len(counts)-3, 40)
	if barWidth < 10 {
		return counts
	}
	fill := 0
	if total := max(b.total, read); total > 0 {
		fill = barWidth * finished / total
	}
	return "[" + strings.Repeat("#", fill) + strings.Repeat(".", barWidth-fill) + "]" + counts
}

// countLines counts the non-blank lines of the file at path, so that the
// progress bar knows the whole; 0 when it cannot.
func countLines(path string) int {
	f, err := os.Open(path)
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, maxLine+1)
	n := 0
	for sc.Scan() {
		if len(bytes.TrimSpace(sc.Bytes())) > 0 {
			n++
		}
	}
	return n
}

// summary prints the table of outcomes on w.
func (b *batch) summary(w io.Writer, took time.Duration) {
	b.countMu.Lock()
	defer b.countMu.Unlock()
	type row struct {
		label string
		n     int
	}
	var rows []row
	total := 0
	for _, s := range []abi.Status{abi.StatusSuccess, abi.StatusError, abi.StatusTimeout, abi.StatusCancelled} {
		rows = append(rows, row{string(s), b.byStatus[s]})
		total += b.byStatus[s]
	}
	rows = append(rows, row{"total", total})
	codes := make([]abi.Code, 0, len(b.byCode))
	for c := range b.byCode {
		codes = append(codes, c)
	}
	sort.Slice(codes, func(i, j int) bool { return codes[i] < codes[j] })
	width := len("status")
	for _, c := range codes {
		width = max(width, len(c.String()))
	}
	fmt.Fprintf(w, "%-*s  %7s\n", width, "status", "steps")
	for _, r := range rows {
		fmt.Fprintf(w, "%-*s  %7d\n", width, r.label, r.n)
	}
	if len(codes) > 0 {
		fmt.Fprintf(w, "%-*s  %7s\n", width, "error code", "steps")
		for _, c := range codes {
			fmt.Fprintf(w, "%-*s  %7d\n", width, c.String(), b.byCode[c])
		}
	}
	rate := float64(total) / max(took.Seconds(), 1e-9)
	fmt.Fprintf(w, "%d steps in %s (%.1f steps/s), %d attempts, %d retries\n", total, took.Round(time.Millisecond), rate, b.attempts, b.retries)
}
