package host

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/blockhost/blockhost/abi"
	"github.com/blockhost/blockhost/host/engine"
	"github.com/blockhost/blockhost/host/extism"
)

// Block is a loaded, validated module, ready to run steps. It is safe for
// concurrent use; every step runs in its own instance.
type Block struct {
	rt    *Runtime
	name  string
	mod   engine.Module
	kind  moduleKind
	entry []string
	// digest is "sha256:" and the module's SHA-256 in lower-case hex.
	digest string
	// funcs caches an Extism plugin's entry points by function (extism.go).
	funcs sync.Map
	// snap is the module rewritten to start after initialisation, or nil
	// (snapshot.go).
	snap *snapEntry
}

func newBlock(r *Runtime, name string, mod engine.Module) (*Block, error) {
	kind, entry, err := inspect(name, mod)
	if err != nil {
		return nil, err
	}
	return &Block{rt: r, name: name, mod: mod, kind: kind, entry: entry}, nil
}

// Name is the block's name, as given to Load.
func (b *Block) Name() string { return b.name }

// Digest is the module's SHA-256 digest as "sha256:" and 64 lower-case
// hexadecimal digits, the form results and audit records carry.
func (b *Block) Digest() string { return b.digest }

// IsCommand reports whether the block is a plain WASI command rather than
// an ABI block.
func (b *Block) IsCommand() bool { return b.kind == kindCommand }

// Step is one execution of a block.
type Step struct {
	// ID identifies the step in its result and logs; a random one is made
	// when empty.
	ID string
	// Input is given to the block: through input_read for an ABI block, on
	// standard input for a WASI command.
	Input []byte
	// Args follow the program name (the block's name) in the guest's argv.
	Args []string
	// Grants are the capabilities the step may use; the zero value grants
	// nothing.
	Grants Grants
	// Limits override the runtime's defaults field by field.
	Limits Limits
	// Function is the export an Extism plugin's step calls, such as
	// "count_vowels"; it must be empty for other blocks.
	Function string
	// Config is an Extism plugin's configuration, which it reads with
	// config_get. It is the operator's, like Grants, never the input's.
	Config map[string]string
	// Audit is what the audit log's step_start record says of the step
	// beyond what the host knows; the job layer fills it in.
	Audit StepAudit
}

// StepAudit is what the caller tells the audit log about a step
// (host/auditlog). It never changes what the step may do.
type StepAudit struct {
	// Tenant is the tenant the step runs for, when there are several.
	Tenant string
	// IDs are the step's identifiers outside the host, such as a job's
	// or a request's, and the attempt number.
	IDs map[string]string
	// ExtendedGrants are the command-line grants allowed to widen the
	// step's reviewed manifest (--extend-grants), as the operator gave
	// them. host/job sets it from its settings; it is recorded as the
	// step_start record's extended_grants.
	ExtendedGrants []string
}

// Run executes one step in a fresh instance and returns its result. It
// always returns exactly one result: every failure, including a panic in
// the host's own code, becomes a status and an error in it. The step ends
// as cancelled when ctx is cancelled and as timeout when ctx's deadline or
// the step's timeout passes first. A step run once the runtime is closed
// ends as an error, resource_unavailable, without running.
func (b *Block) Run(ctx context.Context, step Step) (res *abi.StepResult) {
	start := time.Now()
	lim := step.Limits.Or(b.rt.limits)
	if step.ID == "" {
		step.ID = newStepID()
	}
	res = &abi.StepResult{StepID: step.ID, Block: b.name, Module: b.digest, Attempts: 1}
	st := &stepState{block: b, id: step.ID, input: step.Input, limits: lim, audit: b.rt.audit}
	st.output.limit = lim.Output
	st.logBudget = lim.Log
	st.tokens = logBurst
	st.lastRefill = start

	defer func() {
		if p := recover(); p != nil {
			res.Status, res.Error = abi.StatusError, abi.NewError(abi.CodeInternalError, abi.ClassPermanent,
				fmt.Sprintf("host failure while running the step: %v", p))
			b.rt.logger.Error("panic while running a step", "step_id", step.ID, "block", b.name, "panic", p)
		}
		res.Usage.BytesIn = uint64(len(step.Input))
		res.Usage.HostCalls = st.hostCalls
		res.LatencyMS = ms(time.Since(start))
		if st.audit != nil {
			st.auditEnd(res)
		}
	}()
	if st.audit != nil {
		st.auditStart(&step)
	}

	ctx, cancel := context.WithTimeoutCause(ctx, lim.Timeout, ErrStepTimeout)
	defer cancel()
	ctx = context.WithValue(ctx, stepKey{}, st)
	if ctx.Err() != nil {
		b.ended(ctx, res)
		return res
	}
	if err := b.checkInput(len(step.Input), lim.Memory); err != nil {
		res.Status, res.Error = abi.StatusError, err
		return res
	}

	cfg := engine.RunConfig{
		Entry:       b.entry,
		Args:        append([]string{b.name}, step.Args...),
		Env:         envList(step.Grants.Env),
		MemoryLimit: lim.Memory,
		Stderr:      &logWriter{st: st, stream: "stderr"},
	}
	if b.kind == kindCommand {
		cfg.Stdin = bytes.NewReader(step.Input)
		cfg.Stdout = &st.output
	} else {
		cfg.Stdout = &logWriter{st: st, stream: "stdout"}
	}

	runStart := time.Now()
	if err := st.open(ctx, step.Grants, &cfg); err != nil {
		st.close()
		res.Status, res.Error = abi.StatusError, err
		return res
	}
	var call *extism.Call
	if b.callsPlugin(step.Function) || step.Function != "" {
		var xerr *abi.Error
		if ctx, call, xerr = b.startExtism(ctx, st, step, &cfg); xerr != nil {
			st.close()
			res.Status, res.Error = abi.StatusError, xerr
			return res
		}
	}
	rr, err := b.stepModule(&step, &cfg).Run(ctx, cfg)
	st.close()
	if call != nil {
		st.hostCalls += call.HostCalls()
	}
	res.Usage.WallMS = ms(time.Since(runStart))
	res.Usage.PeakMemoryBytes = rr.PeakMemory
	cfg.Stderr.(*logWriter).end()
	if w, ok := cfg.Stdout.(*logWriter); ok {
		w.end()
	}
	st.finishLog()

	// A step whose context ended before the guest finished is over, however
	// the guest finished: it may have seen the end through a capability's
	// call (an HTTP request cut by the deadline) and returned normally.
	if errors.Is(err, engine.ErrInterrupted) || st.sawEnd || ctx.Err() != nil || deadlinePassed(ctx) {
		b.ended(ctx, res)
		return res
	}
	if call != nil {
		b.finishExtism(st, call, step.Function, rr, err)
	}
	if !st.output.hit {
		res.Usage.BytesOut = uint64(len(st.output.buf))
		setOutput(res, st.output.buf)
	}
	var trap *engine.Trap
	switch {
	case rr.MemoryLimitHit:
		res.Status = abi.StatusError
		if pages, ok := b.mod.MinMemoryPages(); ok && uint64(pages)*65536 > lim.Memory {
			res.Error = abi.NewError(abi.CodeQuotaExceeded, abi.ClassPermanent,
				fmt.Sprintf("module's initial memory of %s is over the memory limit of %s", sizeString(uint64(pages)*65536), sizeString(lim.Memory)))
		} else {
			res.Error = abi.NewError(abi.CodeQuotaExceeded, abi.ClassPermanent,
				fmt.Sprintf("linear memory would grow past the memory limit of %s", sizeString(lim.Memory)))
		}
	case st.output.hit:
		res.Status = abi.StatusError
		res.Error = abi.NewError(abi.CodeQuotaExceeded, abi.ClassPermanent,
			fmt.Sprintf("output is over the output limit of %s", sizeString(lim.Output)))
	case st.guestErr != nil:
		res.Status, res.Error = abi.StatusError, st.guestErr
	case errors.As(err, &trap):
		res.Status = abi.StatusError
		res.Error = abi.NewError(abi.CodeExecutionFailed, abi.ClassPermanent, trap.Error())
	case errors.Is(err, engine.ErrClosed) || errors.Is(err, ErrClosed):
		// Nothing ran: the step may be retried on a runtime that is open.
		res.Status = abi.StatusError
		res.Error = abi.NewError(abi.CodeResourceUnavailable, abi.ClassRetryable, "the runtime is closed: the step did not run")
	case err != nil:
		res.Status = abi.StatusError
		res.Error = abi.NewError(abi.CodeInternalError, abi.ClassPermanent, "engine failure: "+err.Error())
		b.rt.logger.Error("engine failure", "step_id", step.ID, "block", b.name, "error", err)
	case rr.Exited && rr.ExitCode != 0:
		res.Status = abi.StatusError
		res.Error = abi.NewError(abi.CodeExecutionFailed, abi.ClassPermanent, fmt.Sprintf("exited with code %d", rr.ExitCode))
		code := rr.ExitCode
		res.Error.ExitCode = &code
	default:
		res.Status = abi.StatusSuccess
	}
	return res
}

// InputMemoryShare is the share of the memory limit an ABI block's input
// may take: at most 1/InputMemoryShare of it (docs/abi.md §7). An ABI
// block must hold its whole input in linear memory (input_read has no
// offset), and any block that decodes it needs a second copy as large; an
// input over half the limit cannot be processed, so the step is refused
// before it starts instead of failing after the guest has filled its
// memory. A WASI command reads standard input as a stream and has no such
// bound.
const InputMemoryShare = 2

// checkInput refuses an ABI block's input that is over its share of the
// memory limit, naming what raises the limit.
func (b *Block) checkInput(n int, memory uint64) *abi.Error {
	if b.kind == kindCommand || uint64(n) <= memory/InputMemoryShare {
		return nil
	}
	return abi.NewError(abi.CodeQuotaExceeded, abi.ClassPermanent, fmt.Sprintf(
		"input of %s needs more memory than the memory limit of %s: an ABI block's input may be at most 1/%d of it (%s); "+
			"raise the limit with --memory or the manifest's limits { memory = \"…\" } to at least %s",
		approxSize(uint64(n)), sizeString(memory), InputMemoryShare, sizeString(memory/InputMemoryShare),
		sizeString(roundUpMiB(uint64(n)*InputMemoryShare))))
}

// approxSize is sizeString for sizes that are not whole units: 50000000
// bytes is "47.7 MiB".
func approxSize(n uint64) string {
	if n < 1<<20 || n%(1<<20) == 0 {
		return sizeString(n)
	}
	return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
}

// roundUpMiB rounds n up to a whole MiB, the unit an operator would write.
func roundUpMiB(n uint64) uint64 { return (n + 1<<20 - 1) &^ (1<<20 - 1) }

// ended fills in a result for a step whose context ended.
func (b *Block) ended(ctx context.Context, res *abi.StepResult) {
	var timeout time.Duration
	if st, ok := ctx.Value(stepKey{}).(*stepState); ok {
		timeout = st.limits.Timeout
	}
	endedResult(ctx, res, timeout)
}

// endedResult fills in a result for a step whose context ended: cancelled
// or timeout by the recorded cause, with no output.
func endedResult(ctx context.Context, res *abi.StepResult, timeout time.Duration) {
	res.Output, res.OutputText, res.OutputBase64 = nil, nil, nil
	if isTimeout(ctx) {
		res.Status = abi.StatusTimeout
		msg := "step deadline passed"
		if errors.Is(context.Cause(ctx), ErrStepTimeout) {
			msg = fmt.Sprintf("step exceeded its %s timeout", timeout)
		}
		res.Error = abi.NewError(abi.CodeCancelledByTimeout, abi.ClassPermanent, msg)
		return
	}
	res.Status = abi.StatusCancelled
	res.Error = abi.NewError(abi.CodeCancelledByUser, abi.ClassPermanent, "step cancelled: "+context.Cause(ctx).Error())
}

// isTimeout reports whether ctx ended by a deadline rather than a
// cancellation, from its recorded cause; with none recorded yet, whether
// its deadline has passed (deadlinePassed).
func isTimeout(ctx context.Context) bool {
	cause := context.Cause(ctx)
	if cause == nil {
		return deadlinePassed(ctx)
	}
	return errors.Is(cause, ErrStepTimeout) || errors.Is(cause, context.DeadlineExceeded)
}

// deadlinePassed reports whether ctx's deadline has passed, though its
// timer may not have fired yet. An I/O deadline set to the same instant
// (net/http takes its dial and read deadlines from ctx) can end a host call
// a moment before ctx.Err is set, and the guest then returns normally: the
// step is still over, as timeout.
func deadlinePassed(ctx context.Context) bool {
	d, ok := ctx.Deadline()
	return ok && !time.Now().Before(d)
}

func setOutput(res *abi.StepResult, out []byte) {
	switch {
	case len(out) == 0:
	case json.Valid(out):
		res.Output = json.RawMessage(out)
	case utf8.Valid(out):
		s := string(out)
		res.OutputText = &s
	default:
		res.OutputBase64 = out
	}
}

func envList(env map[string]string) []string {
	if len(env) == 0 {
		return nil
	}
	out := make([]string, 0, len(env))
	for k, v := range env {
		out = append(out, k+"="+v)
	}
	sort.Strings(out)
	return out
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// newStepID returns a 32-hex-digit identifier whose first 12 digits are
// the time in milliseconds, so IDs sort by start time.
func newStepID() string {
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], uint64(time.Now().UnixMilli())<<16)
	_, _ = rand.Read(b[6:])
	return hex.EncodeToString(b[:])
}

func sizeString(n uint64) string {
	switch {
	case n >= 1<<30 && n%(1<<30) == 0:
		return fmt.Sprintf("%d GiB", n>>30)
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d bytes", n)
}

// cappedBuffer collects output up to a limit; a write that would pass it
// is refused whole and remembered.
type cappedBuffer struct {
	buf   []byte
	limit uint64
	hit   bool
}

var errOutputLimit = errors.New("host: output limit reached")

func (c *cappedBuffer) Write(p []byte) (int, error) {
	if uint64(len(c.buf))+uint64(len(p)) > c.limit {
		c.hit = true
		return 0, errOutputLimit
	}
	c.buf = append(c.buf, p...)
	return len(p), nil
}
