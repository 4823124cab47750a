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
	"github.com/blockhost/blockhost/host/executor"
	"github.com/blockhost/blockhost/host/job"
)

// maxLine caps one request line: its input is limited like run's.
const maxLine = maxInput + 1<<20

func batchCommand() *cli.Command {
	return &cli.Command{
		Name:      "batch",
		Usage:     "run many steps from a JSONL file through the executor; one result per line",
		ArgsUsage: "FILE.jsonl|-",
		Description: "Each line of FILE (or standard input for -) is one step request, such as\n" +
			`  {"step_id":"a1","block":"hello.wasm","input":{"name":"ana"},"retry":{"max_attempts":5}}` + "\n" +
			"(see docs/cli.md for every field). Results are written as JSON lines, in the order steps finish.\n" +
			"A flag given here wins over the same setting of a line or a manifest; grant flags add grants.\n" +
			"Ctrl-C cancels what is queued and running; every line read gets a result. A second Ctrl-C\n" +
			"stops reading input at once.\n" +
			"Exit codes: 0 every step succeeded, 1 some did not, 2 bad usage, 3 results could not be\n" +
			"written (or the reader of standard output went away), 130 interrupted.",
		Flags: append([]cli.Flag{
			&cli.IntFlag{Name: "concurrency", Aliases: []string{"c"}, Value: runtime.GOMAXPROCS(0), Usage: "steps running at once"},
			&cli.IntFlag{Name: "queue-size", Value: 64, Usage: "steps queued beyond those running"},
			&cli.IntFlag{Name: "tenant-limit", Usage: "most steps one tenant_id may hold queued or running (0: no limit)"},
			&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Usage: "write results to `FILE` instead of standard output"},
			&cli.BoolFlag{Name: "resume", Usage: "keep --output's results, skip the lines whose step_id has one, append the rest"},
			&cli.DurationFlag{Name: "queue-timeout", Usage: "longest wait for a first attempt (default 1m)"},
			&cli.BoolFlag{Name: "no-progress", Usage: "no progress bar, even on a terminal"},
		}, stepFlags("batch")...),
		Action: batchAction,
	}
}

// batch is the state of one `blockhost batch` run.
type batch struct {
	c      *cli.Context
	svc    *job.Service
	source string // names lines in default step IDs
	out    *resultWriter
	prog   *progress

	// done holds the step IDs with a result: from --resume's file, and
	// every line read, so that a second line with one is refused.
	done    map[string]int // step ID → line, 0 for the resumed file
	skipped int

	countMu sync.Mutex
	lines   int
	total   int // lines in the input file, when known, for the progress bar
}

func batchAction(c *cli.Context) error {
	switch {
	case c.NArg() == 0:
		return usageErrorf("batch: no FILE.jsonl or - given (usage: blockhost batch [flags] FILE.jsonl|-)")
	case c.NArg() > 1:
		return usageErrorf("batch: unexpected arguments after %s: %v (flags come before the file)", c.Args().First(), c.Args().Tail())
	}
	conc, queue, tenants := c.Int("concurrency"), c.Int("queue-size"), c.Int("tenant-limit")
	switch {
	case conc < 1:
		return usageErrorf("invalid --concurrency %d: must be at least 1", conc)
	case queue < 0:
		return usageErrorf("invalid --queue-size %d: must be 0 or more", queue)
	case tenants < 0:
		return usageErrorf("invalid --tenant-limit %d: must be 0 (no limit) or more", tenants)
	}
	settings, err := stepSettings(c)
	if err != nil {
		return err
	}
	if c.IsSet("queue-timeout") {
		if settings.QueueTimeout = c.Duration("queue-timeout"); settings.QueueTimeout <= 0 {
			return usageErrorf("invalid --queue-timeout %s: must be positive", settings.QueueTimeout)
		}
	}
	s := streamsOf(c)
	prog := &progress{w: s.err}
	logger, err := newLogger(c, prog)
	if err != nil {
		return err
	}
	inPath, outPath := c.Args().First(), c.String("output")
	if outPath == "-" {
		outPath = ""
	}
	if c.Bool("resume") && outPath == "" {
		return usageErrorf("invalid --resume: it needs --output FILE, the results to resume")
	}
	// Nothing is opened for writing before this check: -o naming the
	// input would truncate it before it is read.
	if err := checkNotSameFile(inPath, s.in, outPath); err != nil {
		return err
	}

	var in io.Reader
	source := "stdin"
	if inPath == "-" {
		in = s.in
	} else {
		f, err := os.Open(inPath)
		if err != nil {
			return usageErrorf("cannot read batch file: %v", err)
		}
		defer f.Close()
		in, source = f, filepath.Base(inPath)
	}
	svc, err := newService(c, settings, executor.PoolConfig{Concurrency: conc, QueueSize: queue, TenantLimit: tenants}, logger)
	if err != nil {
		return err
	}
	b := &batch{c: c, svc: svc, source: source, prog: prog, done: map[string]int{}}
	b.out = &resultWriter{w: s.out}
	if outPath != "" {
		f, err := b.openOutput(outPath, c.Bool("resume"))
		if err != nil {
			svc.Close(context.Background())
			return err
		}
		defer f.Close()
	}

	// The first Ctrl-C (main.go) cancels ctx; a write failure cancels it
	// too, with its own cause.
	ctx, cancel := context.WithCancelCause(c.Context)
	defer cancel(nil)
	b.out.failed = func(err error) { cancel(fmt.Errorf("%w: %v", errOutputFailed, err)) }

	if inPath != "-" && !c.Bool("no-progress") {
		b.total = countLines(inPath)
	}
	start := time.Now()
	stopProgress := b.progress(start)
	readErr, interrupted := b.feed(ctx, in, conc+queue)
	svc.Close(context.Background())
	stopProgress()
	outErr := b.out.error()
	stored := b.out.counts.Counts()
	if !errors.Is(outErr, syscall.EPIPE) {
		b.summary(s.err, stored, time.Since(start))
	}

	switch {
	case outErr != nil:
		return outputFailed(outErr)
	case readErr != nil:
		return &exitErr{code: exitUsage, msg: readErr.Error()}
	case interrupted || c.Context.Err() != nil:
		return &exitErr{code: exitCancelled}
	case stored.ByStatus[abi.StatusSuccess] != stored.Steps:
		return &exitErr{code: exitError}
	}
	return nil
}

// errOutputFailed is the cause with which a write failure cancels the
// steps still running.
var errOutputFailed = errors.New("results can no longer be written")

// checkNotSameFile refuses an output that is the input: the same path, or
// the same file through a link or standard input.
func checkNotSameFile(inPath string, stdin io.Reader, outPath string) error {
	if outPath == "" {
		return nil
	}
	outInfo, err := os.Stat(outPath)
	if err != nil {
		return nil // it does not exist yet, so it is not the input
	}
	var inInfo os.FileInfo
	if inPath == "-" {
		if f, ok := stdin.(*os.File); ok {
			inInfo, _ = f.Stat()
		}
	} else {
		inInfo, _ = os.Stat(inPath)
	}
	if inInfo != nil && os.SameFile(inInfo, outInfo) && inInfo.Mode().IsRegular() {
		what := inPath
		if inPath == "-" {
			what = "standard input"
		}
		return usageErrorf("invalid --output %s: it is the input (%s); writing results there would destroy the requests", outPath, what)
	}
	return nil
}

// openOutput opens --output: truncated, or with --resume kept, cut back to
// its last whole line and appended to, the step IDs it holds recorded.
func (b *batch) openOutput(path string, resume bool) (*os.File, error) {
	if !resume {
		f, err := os.Create(path)
		if err != nil {
			return nil, usageErrorf("cannot write --output: %v", err)
		}
		b.out.w, b.out.f = f, f
		return f, nil
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o666)
	if err != nil {
		return nil, usageErrorf("cannot write --output: %v", err)
	}
	r := bufio.NewReaderSize(f, 64<<10)
	var whole int64
	for {
		line, err := r.ReadBytes('\n')
		if err != nil {
			break // EOF, or a last line cut short by a crash: dropped below
		}
		whole += int64(len(line))
		var res struct {
			StepID string `json:"step_id"`
		}
		if json.Unmarshal(line, &res) == nil && res.StepID != "" {
			b.done[res.StepID] = 0
		}
	}
	if err := f.Truncate(whole); err != nil {
		f.Close()
		return nil, usageErrorf("cannot resume --output %s: %v", path, err)
	}
	if _, err := f.Seek(whole, io.SeekStart); err != nil {
		f.Close()
		return nil, usageErrorf("cannot resume --output %s: %v", path, err)
	}
	b.out.w, b.out.f, b.out.off = f, f, whole
	return f, nil
}

type readLineResult struct {
	n    int
	line []byte
	err  error
}

// feed reads requests and submits them, holding at most capacity in the
// executor at once so that none is refused for a full queue, and returns
// once every submitted step has its result written. It stops taking lines
// at the second Ctrl-C (interrupted) and when results can no longer be
// written.
func (b *batch) feed(ctx context.Context, in io.Reader, capacity int) (readErr error, interrupted bool) {
	slots := make(chan struct{}, capacity)
	var wg sync.WaitGroup
	defer wg.Wait()
	// Collectors wait for the steps' results and write them, as they
	// finish: capacity of them, one for each step the executor may hold,
	// each kept for the whole batch so that its stack, grown once by
	// encoding a result, serves every step after (a goroutine per step
	// grew one every time).
	type started struct {
		t    *job.Ticket
		slot bool
	}
	tickets := make(chan started, capacity)
	for range capacity {
		wg.Go(func() {
			for s := range tickets {
				b.out.write(s.t.Result(), s.t.DuplicateOf())
				if s.slot {
					<-slots
				}
			}
		})
	}
	defer close(tickets)

	// The reader goroutine is owned by feed; it ends at the end of the
	// input, or when it next returns from Read after feed stopped taking
	// lines. A Read blocked on a terminal or on a FIFO whose writer stays
	// open is left behind at the second Ctrl-C: the process exits.
	lines := make(chan readLineResult)
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		defer close(lines)
		r := bufio.NewReaderSize(in, 64<<10)
		for n := 1; ; n++ {
			line, err := readLine(r)
			select {
			case lines <- readLineResult{n, line, err}:
			case <-stop:
				return
			}
			if err != nil {
				return
			}
		}
	}()
	second := secondInterrupt(b.c.Context)
	for {
		var it readLineResult
		var ok bool
		select {
		case it, ok = <-lines:
		case <-second:
			return nil, true
		case <-b.out.stopped():
			return nil, false
		}
		if !ok {
			return nil, false
		}
		if len(bytes.TrimSpace(it.line)) > 0 {
			p := b.prepare(ctx, it.line, it.n)
			if p != nil && p.res != nil {
				wg.Go(func() { b.out.write(p.res, "") })
			} else if p != nil {
				slot := false
				select {
				case slots <- struct{}{}:
					slot = true
				case <-ctx.Done():
					// Cancelled: the step ends at once, needing no slot.
				case <-second:
					// Read but never started: it ends cancelled.
					b.out.write(job.ErrorResult(p.xr.Step.ID, p.xr.Runner.Name(), context.Cause(ctx)), "")
					return nil, true
				}
				tickets <- started{b.svc.Start(ctx, p.xr), slot}
			}
		}
		if errors.Is(it.err, io.EOF) {
			return nil, false
		}
		if it.err != nil {
			return fmt.Errorf("reading %s at line %d: %v", b.source, it.n, it.err), false
		}
	}
}

// pending is a line ready to submit, or answered at once with res.
type pending struct {
	xr  executor.Request
	res *abi.StepResult
}

// prepare turns line n into a step request, or into the result that says
// why it cannot run. It returns nil for a line skipped by --resume.
func (b *batch) prepare(ctx context.Context, line []byte, n int) *pending {
	b.countMu.Lock()
	b.lines++
	b.countMu.Unlock()
	id := fmt.Sprintf("%s:%d", b.source, n)
	fail := func(block string, err error) *pending {
		return &pending{res: job.ErrorResult(id, block, fmt.Errorf("line %d: %w", n, err))}
	}
	if len(line) > maxLine {
		return fail("", &job.FieldError{Problem: fmt.Sprintf("longer than %d MiB", maxLine>>20), Syntax: true})
	}
	req, err := job.ParseRequest(line)
	if req.StepID != "" {
		id = req.StepID
	}
	if prev, ok := b.done[id]; ok {
		if prev == 0 {
			b.countMu.Lock()
			b.skipped++
			b.countMu.Unlock()
			return nil // --resume: its result is in the file already
		}
		return fail(req.Block, &job.FieldError{StepID: id, Field: "step_id",
			Problem: fmt.Sprintf("%q is also the step_id of line %d; each line needs its own", id, prev)})
	}
	b.done[id] = n
	if err != nil {
		return fail(req.Block, err)
	}
	req.StepID = id
	xr, err := b.svc.Resolve(ctx, req)
	if err != nil {
		return fail(req.Block, err)
	}
	return &pending{xr: xr}
}

// readLine returns the next line without its newline, at most maxLine
// bytes of it; a longer line comes back cut, and submit reports it.
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

// resultWriter writes result lines, whole or not at all: at the first
// failure it stops, cuts a file back to its last whole line, and calls
// failed. It counts only the results it stored.
type resultWriter struct {
	mu     sync.Mutex
	w      io.Writer
	f      *os.File // w when it is a file, to cut a partial line
	off    int64    // bytes of whole lines in f
	err    error
	stop   chan struct{}
	failed func(error)
	counts job.Counter
}

// line is a result as batch writes it: the step's result, and the step it
// duplicates when it shares another's result.
type line struct {
	*abi.StepResult
	DuplicateOf string `json:"duplicate_of,omitempty"`
}

func (w *resultWriter) write(res *abi.StepResult, dupOf string) {
	b, err := json.Marshal(line{res, dupOf})
	if err != nil {
		b, _ = json.Marshal(job.ErrorResult(res.StepID, res.Block, fmt.Errorf("encoding the result: %w", err)))
	}
	b = append(b, '\n')
	w.mu.Lock()
	if w.err != nil {
		w.mu.Unlock()
		return
	}
	n, err := w.w.Write(b)
	if err == nil && n < len(b) {
		err = io.ErrShortWrite
	}
	if err != nil {
		w.err = err
		if w.f != nil && n > 0 {
			_ = w.f.Truncate(w.off) // leave whole lines only
		}
		close(w.stopCh())
		w.mu.Unlock()
		if w.failed != nil {
			w.failed(err)
		}
		return
	}
	w.off += int64(n)
	w.mu.Unlock()
	w.counts.Add(res)
}

func (w *resultWriter) stopCh() chan struct{} {
	if w.stop == nil {
		w.stop = make(chan struct{})
	}
	return w.stop
}

// stopped is closed at the first write failure.
func (w *resultWriter) stopped() <-chan struct{} {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.stopCh()
}

func (w *resultWriter) error() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

// progress is standard error while a progress bar may be drawn on it: a
// log line written through it goes above the bar, which is then redrawn,
// so that no stale bar is left behind.
type progress struct {
	mu     sync.Mutex
	w      io.Writer
	drawn  string // the bar on screen, "" when none
	active bool
}

func (p *progress) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.active || p.drawn == "" {
		return p.w.Write(b)
	}
	io.WriteString(p.w, "\r\033[K")
	n, err := p.w.Write(b)
	io.WriteString(p.w, p.drawn)
	return n, err
}

func (p *progress) draw(bar string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.drawn = bar
	io.WriteString(p.w, "\r\033[K"+bar)
}

func (p *progress) clear() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.active, p.drawn = false, ""
	io.WriteString(p.w, "\r\033[K")
}

// progress draws a one-line progress bar on standard error while the
// batch runs, when standard error is a terminal. It returns the function
// that stops it and clears the line.
func (b *batch) progress(start time.Time) func() {
	f, ok := b.prog.w.(*os.File)
	if s, isSink := b.prog.w.(*logSink); isSink {
		f, ok = s.file()
	}
	if b.c.Bool("no-progress") || !ok || !term.IsTerminal(int(f.Fd())) {
		return func() {}
	}
	b.prog.mu.Lock()
	b.prog.active = true
	b.prog.mu.Unlock()
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		tick := time.NewTicker(200 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-done:
				b.prog.clear()
				return
			case <-tick.C:
				b.prog.draw(b.progressLine(f, start))
			}
		}
	})
	return func() {
		close(done)
		wg.Wait()
	}
}

func (b *batch) progressLine(f *os.File, start time.Time) string {
	c := b.out.counts.Counts()
	finished := c.Steps
	b.countMu.Lock()
	read := b.lines - b.skipped
	total := b.total - b.skipped
	b.countMu.Unlock()
	of := read
	if total > 0 {
		of = total
	}
	counts := fmt.Sprintf(" %d/%d  ok %d  error %d  timeout %d  cancelled %d", finished, of,
		c.ByStatus[abi.StatusSuccess], c.ByStatus[abi.StatusError], c.ByStatus[abi.StatusTimeout], c.ByStatus[abi.StatusCancelled])
	s, _ := b.svc.Executor().Stats(executor.DefaultPool)
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
	if t := max(total, read); t > 0 {
		fill = min(barWidth*finished/t, barWidth)
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

// summary prints the table of the results stored on w.
func (b *batch) summary(w io.Writer, c job.Counts, took time.Duration) {
	type row struct {
		label string
		n     int
	}
	var rows []row
	for _, s := range []abi.Status{abi.StatusSuccess, abi.StatusError, abi.StatusTimeout, abi.StatusCancelled} {
		rows = append(rows, row{string(s), c.ByStatus[s]})
	}
	rows = append(rows, row{"total", c.Steps})
	codes := make([]abi.Code, 0, len(c.ByCode))
	for code := range c.ByCode {
		codes = append(codes, code)
	}
	sort.Slice(codes, func(i, j int) bool { return codes[i] < codes[j] })
	width := len("status")
	for _, code := range codes {
		width = max(width, len(code.String()))
	}
	fmt.Fprintf(w, "%-*s  %7s\n", width, "status", "steps")
	for _, r := range rows {
		fmt.Fprintf(w, "%-*s  %7d\n", width, r.label, r.n)
	}
	if len(codes) > 0 {
		fmt.Fprintf(w, "%-*s  %7s\n", width, "error code", "steps")
		for _, code := range codes {
			fmt.Fprintf(w, "%-*s  %7d\n", width, code.String(), c.ByCode[code])
		}
	}
	rate := float64(c.Steps) / max(took.Seconds(), 1e-9)
	fmt.Fprintf(w, "%d results stored in %s (%.1f steps/s), %d attempts, %d retries\n",
		c.Steps, took.Round(time.Millisecond), rate, c.Attempts, c.Retries)
	if b.skipped > 0 {
		fmt.Fprintf(w, "%d lines skipped: their results were already in --output (--resume)\n", b.skipped)
	}
	if err := b.out.error(); err != nil {
		b.countMu.Lock()
		fmt.Fprintf(w, "results of %d lines read were not stored: writing failed\n", b.lines-b.skipped-c.Steps)
		b.countMu.Unlock()
	}
}
