// Package auditlog writes blockhost's audit log: one JSON object per line
// (JSONL), separate from the general log, recording what each step was
// allowed to do and what it did with it — its start (block, module digest,
// effective grants, limits, tenant, ids), every use and every refusal of a
// capability, and its end (status, code). docs/security.md, "Reading the
// audit log", is the record schema.
//
// The package guarantees that:
//   - a block cannot write to the audit log: records are made by the host
//     from what the host decided and measured. No field holds free text a
//     guest wrote — no log line, no error_set message, no header or
//     environment value; a target (URL, path) is what the guest asked for
//     as the host parsed it, in a field of its own;
//   - every record is one line: encoding/json escapes every control
//     character, so nothing in a record can start another;
//   - records from concurrent steps are written whole, one at a time, in
//     the order they are made.
package auditlog

import (
	"encoding/json"
	"io"
	"sync"
	"time"
)

// Event names, the "event" of a record.
const (
	EventStepStart  = "step_start"
	EventCapability = "capability"
	EventStepEnd    = "step_end"
)

// Record is one line of the audit log. Fields that do not apply to the
// event are left out.
type Record struct {
	// Time is when the record was made (RFC 3339, UTC, nanoseconds).
	Time time.Time `json:"time"`
	// Event is EventStepStart, EventCapability or EventStepEnd.
	Event string `json:"event"`
	// StepID, Block and Module (the module's digest, "sha256:HEX")
	// identify the step in every record.
	StepID string `json:"step_id"`
	Block  string `json:"block"`
	Module string `json:"module,omitempty"`

	// Step start.
	Tenant string `json:"tenant,omitempty"`
	// IDs are identifiers the step has outside the host: a job's, a
	// request's, an attempt number.
	IDs map[string]string `json:"ids,omitempty"`
	// Grants are the step's effective grants by capability name, as each
	// capability describes them; "env" lists the names of the granted
	// environment variables, never their values.
	Grants map[string]any `json:"grants,omitempty"`
	Limits *Limits        `json:"limits,omitempty"`
	// ExtendedGrants are the command-line grants that were allowed to
	// widen a reviewed manifest (--extend-grants), as given.
	ExtendedGrants []string `json:"extended_grants,omitempty"`

	// Capability use or refusal.
	Capability string         `json:"capability,omitempty"`
	Op         string         `json:"op,omitempty"`
	Target     string         `json:"target,omitempty"`
	Grant      string         `json:"grant,omitempty"`
	Denied     bool           `json:"denied,omitempty"`
	Reason     string         `json:"reason,omitempty"`
	Error      string         `json:"error,omitempty"`
	Bytes      int64          `json:"bytes,omitempty"`
	DurationMS *float64       `json:"duration_ms,omitempty"`
	Details    map[string]any `json:"details,omitempty"`

	// Step end.
	Status string `json:"status,omitempty"`
	// Code and CodeName are the step error's code, 0 and empty on success.
	Code     uint32 `json:"code,omitempty"`
	CodeName string `json:"code_name,omitempty"`
}

// Limits are a step's effective limits.
type Limits struct {
	TimeoutMS int64  `json:"timeout_ms"`
	Memory    uint64 `json:"memory"`
	Output    uint64 `json:"output"`
	Log       uint64 `json:"log"`
}

// Log is an audit log. It is safe for concurrent use.
type Log struct {
	mu  sync.Mutex
	w   io.Writer
	err error
}

// New returns a log that writes to w. The caller closes w, after the
// steps that write to the log are done.
func New(w io.Writer) *Log { return &Log{w: w} }

// Write adds r, setting its Time when it has none. A failed write is
// kept: Err returns the first, and later records are still attempted, so
// one full disk does not silence the rest of the log once space is back.
func (l *Log) Write(r *Record) {
	if l == nil {
		return
	}
	if r.Time.IsZero() {
		r.Time = time.Now().UTC()
	}
	b, err := json.Marshal(r)
	if err != nil {
		// Details a capability filled with a value JSON cannot write: keep
		// the record without them rather than lose it.
		r.Details = map[string]any{"unencodable": err.Error()}
		b, _ = json.Marshal(r)
	}
	b = append(b, '\n')
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, err := l.w.Write(b); err != nil && l.err == nil {
		l.err = err
	}
}

// Err returns the first write error, or nil.
func (l *Log) Err() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.err
}
