package fscap

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/blockhost/blockhost/host/capability"

	"github.com/blockhost/blockhost/host/engine"
)

// Config configures a Session.
type Config struct {
	// Logger receives a record for every file operation (debug) and every
	// denial, quota refusal and abandoned operation (warn). It should carry
	// the step's fields, such as step_id. Nil means discard.
	Logger hclog.Logger
	// OnQuota, if set, is called when a write quota refuses a write, on the
	// goroutine that asked for the write. The host uses it to end the step
	// as quota_exceeded, as it does for the output cap.
	OnQuota func(err error)
	// Audit, if set, receives an event for every operation and every
	// refusal, for the audit log: the operation, the guest path, the
	// grant and the bytes moved. A WASI guest's file is its open and one
	// event of the bytes moved when it is closed, not one per call.
	Audit func(capability.Event)
}

// Session is one step's access to its granted directories. Every method
// is bounded by its grant's operation timeout and by ctx; none can reach
// anything outside the directories; quotas count across all of a
// session's methods, host calls and WASI alike. A Session is safe for
// concurrent use.
type Session struct {
	ctx     context.Context
	grants  []*grant // longest guest path first
	log     *opLog
	onQuota func(error)

	abandoned atomic.Int64 // this session's abandoned operations still running
	bg        sync.WaitGroup
	closed    atomic.Bool
	idle      chan struct{} // closed when Close has released everything
	closeOnce sync.Once
}

// grant is a Grant opened for one step.
type grant struct {
	Grant
	root *os.Root

	mu      sync.Mutex
	written int64 // bytes written this step
	created int64 // files and directories created this step
}

var (
	// errEscape is os.Root's error for a name that leads out of the root,
	// which package os does not export. It is taken from the first root
	// opened, by asking for "..", which os.Root refuses before any system
	// call.
	errEscape   error
	escapeOnce  sync.Once
	errNotReady = errors.New("fscap: session is closed")
)

// Open opens the step's grants: each host directory is opened once, as an
// os.Root, and every later operation is resolved beneath that handle. ctx
// is the step's context: once it ends, every operation fails at once with
// ErrStepEnded. The caller must Close the session.
func Open(ctx context.Context, grants []Grant, cfg Config) (*Session, error) {
	if err := ValidateGrants(grants); err != nil {
		return nil, err
	}
	logger := cfg.Logger
	if logger == nil {
		logger = hclog.NewNullLogger()
	}
	s := &Session{ctx: ctx, log: newOpLog(logger, cfg.Audit), onQuota: cfg.OnQuota, idle: make(chan struct{})}
	for _, g := range grants {
		g = g.withDefaults()
		octx, cancel := context.WithTimeoutCause(ctx, g.Timeout, errOpTimeout)
		root, err := call(s, octx, nil, func() (*os.Root, error) { return os.OpenRoot(g.HostDir) }, func(r *os.Root) { r.Close() })
		cancel()
		if err != nil {
			s.Close()
			if ctx.Err() != nil {
				return nil, &Error{Op: "open", Path: g.GuestPath, Grant: g.Name, Class: ErrStepEnded, Err: context.Cause(ctx)}
			}
			if errors.Is(err, context.DeadlineExceeded) {
				err = fmt.Errorf("no answer within %s", g.Timeout)
			}
			return nil, fmt.Errorf("fscap: grant %q: cannot open host directory %s: %w", g.Name, g.HostDir, err)
		}
		escapeOnce.Do(func() {
			_, err := root.Lstat("..")
			var pe *os.PathError
			if errors.As(err, &pe) {
				errEscape = pe.Err
			}
		})
		s.grants = append(s.grants, &grant{Grant: g, root: root})
	}
	slices.SortFunc(s.grants, func(a, b *grant) int { return cmp.Compare(len(b.GuestPath), len(a.GuestPath)) })
	return s, nil
}

// Close ends the session: later operations fail. It does not wait for
// abandoned operations or background cleanup; the directories are released
// once those are done.
func (s *Session) Close() {
	s.closeOnce.Do(func() {
		s.closed.Store(true)
		s.log.summary()
		go func() {
			s.bg.Wait()
			for _, g := range s.grants {
				g.root.Close()
			}
			close(s.idle)
		}()
	})
}

// Grants returns the session's grants, with defaults filled in.
func (s *Session) Grants() []Grant {
	out := make([]Grant, len(s.grants))
	for i, g := range s.grants {
		out[i] = g.Grant
	}
	slices.SortFunc(out, func(a, b Grant) int { return strings.Compare(a.GuestPath, b.GuestPath) })
	return out
}

// Dirs returns the session's grants as WASI preopened directories, each
// confined exactly as the session's own methods are, with the same quotas
// and timeouts.
func (s *Session) Dirs() []engine.Dir {
	var dirs []engine.Dir
	for _, g := range s.grants {
		dirs = append(dirs, engine.Dir{GuestPath: g.GuestPath, FS: &wasiFS{s: s, g: g}, ReadOnly: g.ReadOnly})
	}
	slices.SortFunc(dirs, func(a, b engine.Dir) int { return strings.Compare(a.GuestPath, b.GuestPath) })
	return dirs
}

// lookup finds the grant a guest path falls in and the path relative to
// its root.
func (s *Session) lookup(p string) (*grant, string, *problem) {
	rest, _, pr := splitGuestPath(p)
	if pr != nil {
		return nil, "", pr
	}
	for _, g := range s.grants {
		gp := g.GuestPath
		switch {
		case gp == "/":
			if rest == "" {
				return g, ".", nil
			}
			return g, rest, nil
		case p == gp:
			return g, ".", nil
		case strings.HasPrefix(p, gp+"/"):
			return g, p[len(gp)+1:], nil
		}
	}
	return nil, "", &problem{ErrPermission, "no directory is granted at this path"}
}

// op is one file operation in progress.
type op struct {
	s       *Session
	name    string
	path    string // as the guest gave it
	g       *grant
	rel     string // relative to g's root
	stepCtx context.Context
	ctx     context.Context // bounded by the operation timeout
	cancel  context.CancelFunc
	tr      tracker
	start   time.Time
	bytes   int64
	quiet   bool   // success is not logged (each WASI read and write)
	via     string // "wasi" for an engine's WASI, empty for the host calls
}

// begin starts an operation on a guest path.
func (s *Session) begin(ctx context.Context, name, path string, write bool) (*op, error) {
	o := &op{s: s, name: name, path: path, stepCtx: ctx, start: time.Now()}
	g, rel, pr := s.lookup(path)
	if pr != nil {
		return nil, o.refuse(pr.class, pr.Detail)
	}
	return s.beginIn(o, g, rel, write)
}

// beginRel starts an operation on a name relative to g's root.
func (s *Session) beginRel(name string, g *grant, rel string, write bool) (*op, error) {
	o := &op{s: s, name: name, path: guestJoin(g.GuestPath, rel), stepCtx: s.ctx, start: time.Now(), g: g}
	return s.beginIn(o, g, rel, write)
}

func (s *Session) beginIn(o *op, g *grant, rel string, write bool) (*op, error) {
	o.g, o.rel = g, rel
	switch {
	case o.stepCtx.Err() != nil:
		return nil, o.fail(&Error{Class: ErrStepEnded, Err: context.Cause(o.stepCtx)})
	case s.closed.Load():
		return nil, o.fail(&Error{Class: ErrUnavailable, Detail: "the step's file system is closed", Err: errNotReady})
	case write && g.ReadOnly:
		return nil, o.refuseFor(ErrPermission, ReasonReadOnly)
	case s.abandoned.Load() >= MaxAbandonedPerStep || abandonedNow.Load() >= MaxAbandoned:
		return nil, o.refuse(ErrUnavailable, "too many file operations are stuck in the kernel")
	}
	o.ctx, o.cancel = context.WithTimeoutCause(o.stepCtx, g.Timeout, errOpTimeout)
	return o, nil
}

func guestJoin(gp, rel string) string {
	switch {
	case rel == ".":
		return gp
	case gp == "/":
		return "/" + rel
	}
	return gp + "/" + rel
}

// refuse fails the operation before it reaches the file system.
func (o *op) refuse(class error, detail string) error {
	return o.fail(&Error{Class: class, Detail: detail})
}

// refuseFor is refuse for a refusal a caller tells apart by its Reason.
func (o *op) refuseFor(class error, r Reason) error {
	return o.fail(&Error{Class: class, Reason: r, Detail: r.String()})
}

// end finishes the operation: it logs it and returns err as an *Error.
func (o *op) end(err error) error {
	if o.cancel != nil {
		defer o.cancel()
	}
	if err == nil {
		switch {
		case !o.quiet:
			o.s.log.done(o)
		case o.name == "open":
			// A WASI open is quiet in the log, which would drown in them,
			// but it is the audit log's record of the file's use.
			o.s.log.auditOp(o, nil)
		}
		return nil
	}
	var e *Error
	if errors.As(err, &e) {
		return err // refused, and logged, already
	}
	if o.ctx != nil && o.ctx.Err() != nil && (errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)) {
		if o.stepCtx.Err() != nil {
			return o.fail(&Error{Class: ErrStepEnded, Err: context.Cause(o.stepCtx)})
		}
		detail := fmt.Sprintf("no answer within %s", o.g.Timeout)
		if o.tr.pending != nil {
			detail += "; the operation was abandoned and is still running"
		}
		return o.fail(&Error{Class: ErrTimeout, Detail: detail, Err: os.ErrDeadlineExceeded})
	}
	class := classOf(err)
	detail := describe(err)
	if class == ErrPermission && errEscape != nil && errors.Is(err, errEscape) {
		detail = "the path leads out of the granted directory"
	}
	return o.fail(&Error{Class: class, Detail: detail, Err: err})
}

// fail completes e with the operation's identity, logs it and returns it.
func (o *op) fail(e *Error) error {
	if o.cancel != nil {
		o.cancel()
	}
	e.Op, e.Path = o.name, o.path
	if o.g != nil {
		e.Grant = o.g.Name
	}
	o.s.log.failed(o, e)
	return e
}

// quota refuses a write for a quota, and tells the host.
func (o *op) quota(format string, args ...any) error {
	err := o.refuse(ErrQuota, fmt.Sprintf(format, args...))
	if o.s.onQuota != nil {
		o.s.onQuota(err)
	}
	return err
}

// describe returns the innermost error's text: the kernel's words, without
// the host path package os would put around them.
func describe(err error) string {
	for {
		var pe *os.PathError
		var le *os.LinkError
		switch {
		case errors.As(err, &pe):
			err = pe.Err
		case errors.As(err, &le):
			err = le.Err
		default:
			return err.Error()
		}
	}
}

// reserveBytes charges n bytes written to the grant's quota.
func (o *op) reserveBytes(n int64) error {
	g := o.g
	g.mu.Lock()
	over := g.written+n > g.Quota.WriteBytes
	if !over {
		g.written += n
	}
	g.mu.Unlock()
	if over {
		return o.quota("the step may write at most %s under %q", size(g.Quota.WriteBytes), g.Name)
	}
	return nil
}

// checkBytes reports whether n more bytes fit the grant's write quota,
// without charging them.
func (o *op) checkBytes(n int64) error {
	g := o.g
	g.mu.Lock()
	over := g.written+n > g.Quota.WriteBytes
	g.mu.Unlock()
	if over {
		return o.quota("the step may write at most %s under %q", size(g.Quota.WriteBytes), g.Name)
	}
	return nil
}

// checkFile reports whether one more file may be created under the grant.
func (o *op) checkFile() error {
	g := o.g
	g.mu.Lock()
	over := g.created+1 > g.Quota.Files
	g.mu.Unlock()
	if over {
		return o.quota("the step may create at most %d files under %q", g.Quota.Files, g.Name)
	}
	return nil
}

// created counts a file or directory the step created.
func (o *op) created() {
	o.g.mu.Lock()
	o.g.created++
	o.g.mu.Unlock()
}

// checkSize refuses a file that would grow past the largest allowed.
func (o *op) checkSize(n int64) error {
	if n > o.g.Quota.FileSize {
		return o.quota("files under %q may be at most %s", o.g.Name, size(o.g.Quota.FileSize))
	}
	return nil
}

func size(n int64) string {
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
