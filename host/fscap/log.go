package fscap

import (
	"strconv"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/blockhost/blockhost/host/capability"
)

// Caps on the records one session writes, so that a block probing paths in
// a loop cannot flood the host's log. What is over a cap is counted and
// reported once when the session closes.
const (
	maxOpRecords     = 1000 // debug records of completed operations
	maxDenialRecords = 200  // warn records of refusals and abandoned operations
)

// opLog writes a session's file operation records.
type opLog struct {
	l     hclog.Logger
	audit func(capability.Event) // nil: no audit log

	mu             sync.Mutex
	ops, denials   int
	droppedOps     int
	droppedDenials int
}

func newOpLog(l hclog.Logger, audit func(capability.Event)) *opLog {
	return &opLog{l: l.Named("fs"), audit: audit}
}

// auditOp records the operation in the audit log, uncapped: the audit log
// is the complete record, the general log a capped view.
func (l *opLog) auditOp(o *op, e *Error) {
	if l.audit == nil {
		return
	}
	ev := capability.Event{Capability: Name, Op: o.name, Target: o.path, Bytes: o.bytes, Duration: time.Since(o.start)}
	if o.g != nil {
		ev.Grant = o.g.Name
	}
	if o.via != "" {
		ev.Fields = map[string]any{"via": o.via}
	}
	if e != nil {
		switch e.Class {
		case ErrPermission, ErrQuota, ErrInvalidPath:
			ev.Denied, ev.Reason = true, e.Error()
		default:
			ev.Error = e.Error()
		}
	}
	l.audit(ev)
}

// fields are the fields every record carries. The step's own fields
// (step_id, block) come with the logger.
func fields(o *op, extra ...any) []any {
	grant := ""
	if o.g != nil {
		grant = o.g.Name
	}
	f := []any{"op", o.name, "grant", grant, "path", logPath(o.path), "bytes", o.bytes,
		"ms", float64(time.Since(o.start).Microseconds()) / 1000}
	if o.via != "" {
		f = append(f, "via", o.via)
	}
	return append(f, extra...)
}

// logPath keeps paths with control or odd bytes readable and unambiguous
// in a text log.
func logPath(p string) string {
	if printable(p) {
		return p
	}
	return strconv.Quote(p)
}

func (l *opLog) done(o *op) {
	l.auditOp(o, nil)
	if !l.l.IsDebug() {
		return
	}
	if l.admitOp() {
		l.l.Debug("file operation", fields(o)...)
	}
}

// admitOp charges one operation record against the cap, counting it as
// dropped when the cap is reached.
func (l *opLog) admitOp() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.ops < maxOpRecords {
		l.ops++
		return true
	}
	l.droppedOps++
	return false
}

func (l *opLog) failed(o *op, e *Error) {
	l.auditOp(o, e)
	warn := false
	switch e.Class {
	case ErrPermission, ErrQuota, ErrInvalidPath, ErrTimeout, ErrUnavailable:
		warn = true
	}
	if !warn {
		if l.l.IsDebug() && l.admitOp() {
			l.l.Debug("file operation failed", fields(o, "error", e.Error())...)
		}
		return
	}
	l.mu.Lock()
	ok := l.denials < maxDenialRecords
	if ok {
		l.denials++
	} else {
		l.droppedDenials++
	}
	l.mu.Unlock()
	if !ok {
		return
	}
	msg := "file operation denied"
	switch e.Class {
	case ErrQuota:
		msg = "file operation refused by a quota"
	case ErrTimeout:
		msg = "file operation timed out"
		if o.tr.pending != nil {
			msg = "file operation abandoned"
		}
	case ErrUnavailable:
		msg = "file operation unavailable"
	}
	l.l.Warn(msg, fields(o, "error", e.Error(), "abandoned_now", Abandoned())...)
}

// summary reports records dropped by the caps.
func (l *opLog) summary() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.droppedOps > 0 || l.droppedDenials > 0 {
		l.l.Warn("file operation records dropped by the log caps", "operations", l.droppedOps, "denials", l.droppedDenials)
	}
}
