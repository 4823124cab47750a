package worker

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/blockhost/blockhost/abi"
	"github.com/blockhost/blockhost/host/executor"
)

// The subjects of the wire contract (docs/worker.md).
const (
	// SubjectAssign carries ExecAssignments from the router to workers.
	SubjectAssign = "caf.exec.assign.v1"
	// SubjectAssignAck carries an AssignmentAck for each delivery a worker
	// accepted, rejected or could not take.
	SubjectAssignAck = "caf.exec.assign.v1.ack"
	// SubjectResult carries exactly one ExecResult per assignment.
	SubjectResult = "caf.exec.result.v1"
	// SubjectDLQ carries a DeadLetter for each assignment that can never
	// succeed.
	SubjectDLQ = "caf.exec.dlq.v1"
	// SubjectHeartbeat carries each worker's Heartbeat.
	SubjectHeartbeat = "caf.worker.heartbeat.v1"
	// SubjectCancel carries Cancel requests.
	SubjectCancel = "caf.exec.cancel.v1"
)

// WireVersion is the only assignment version a worker accepts, and the
// version of every result it publishes.
const WireVersion = "1"

// maxIDLen bounds every correlation id: an id becomes a JetStream message
// id and a log field, so it must be short and printable.
const maxIDLen = 256

// Assignment is an ExecAssignment: one step the router asks a worker to
// run.
type Assignment struct {
	Version      string   `json:"version"`
	AssignmentID string   `json:"assignment_id"`
	RequestID    string   `json:"request_id"`
	TenantID     string   `json:"tenant_id"`
	TraceID      string   `json:"trace_id,omitempty"`
	RunID        string   `json:"run_id,omitempty"`
	Executor     Provider `json:"executor"`
	Job          Job      `json:"job"`
	Options      *Options `json:"options,omitempty"`
}

// Provider is the assignment's executor section; the worker echoes
// ProviderID in the result.
type Provider struct {
	ProviderID string `json:"provider_id"`
	Channel    string `json:"channel,omitempty"`
	Endpoint   string `json:"endpoint,omitempty"`
}

// Job is the block type and the step's input: every field other than
// "type" is the input, as a JSON object.
type Job struct {
	Type string
	// Fields are the job's other fields, raw.
	Fields map[string]json.RawMessage
}

// MarshalJSON writes the job as one object, "type" first.
func (j Job) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteString(`{"type":`)
	t, _ := json.Marshal(j.Type)
	b.Write(t)
	if len(j.Fields) > 0 {
		rest, err := json.Marshal(j.Fields) // sorted keys
		if err != nil {
			return nil, err
		}
		b.WriteByte(',')
		b.Write(rest[1:])
	} else {
		b.WriteByte('}')
	}
	return b.Bytes(), nil
}

// UnmarshalJSON reads a job object.
func (j *Job) UnmarshalJSON(b []byte) error {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		return fmt.Errorf("job is not an object: %w", err)
	}
	j.Type, j.Fields = "", nil
	if t, ok := m["type"]; ok {
		if err := json.Unmarshal(t, &j.Type); err != nil {
			return fmt.Errorf("job.type is not a string")
		}
		delete(m, "type")
	}
	if len(m) > 0 {
		j.Fields = m
	}
	return nil
}

// Input returns the job's fields other than "type" as a JSON object.
func (j Job) Input() json.RawMessage {
	if len(j.Fields) == 0 {
		return json.RawMessage(`{}`)
	}
	b, _ := json.Marshal(j.Fields)
	return b
}

// Options are the assignment's scheduling options.
type Options struct {
	// DeadlineMS bounds every attempt and wait of the step, in
	// milliseconds counted from the worker's acceptance.
	DeadlineMS int64         `json:"deadline_ms,omitempty"`
	Retry      *RetryOptions `json:"retry,omitempty"`
	// Priority is low, normal, high or critical (or -1 to 2); empty is
	// the block's.
	Priority string `json:"priority,omitempty"`
}

// RetryOptions are the assignment's retry settings.
type RetryOptions struct {
	// MaxAttempts counts the first attempt; 0 is the block's default.
	MaxAttempts int `json:"max_attempts,omitempty"`
}

// AckStatus is an AssignmentAck's status.
type AckStatus string

// The acknowledgement statuses.
const (
	AckAccepted AckStatus = "accepted"
	AckRejected AckStatus = "rejected"
	AckError    AckStatus = "error"
)

// AssignmentAck is an ExecAssignmentAck: the worker's answer to one
// delivery of an assignment.
type AssignmentAck struct {
	AssignmentID string    `json:"assignment_id"`
	RequestID    string    `json:"request_id"`
	TenantID     string    `json:"tenant_id"`
	TraceID      string    `json:"trace_id,omitempty"`
	Status       AckStatus `json:"status"`
	// Reason is the validation rule a rejected assignment broke, such as
	// "unsupported_version"; empty when accepted.
	Reason         string `json:"reason,omitempty"`
	Message        string `json:"message,omitempty"`
	WorkerID       string `json:"worker_id,omitempty"`
	AcknowledgedAt int64  `json:"acknowledged_at"`
}

// Status is a result's status: success, error, timeout or cancelled.
// Reading accepts "canceled" as cancelled; writing always spells
// "cancelled".
type Status string

// The four statuses.
const (
	StatusSuccess   Status = "success"
	StatusError     Status = "error"
	StatusTimeout   Status = "timeout"
	StatusCancelled Status = "cancelled"
)

// UnmarshalText reads a status, accepting "canceled".
func (s *Status) UnmarshalText(b []byte) error {
	switch v := Status(b); v {
	case StatusSuccess, StatusError, StatusTimeout, StatusCancelled:
		*s = v
	case "canceled":
		*s = StatusCancelled
	default:
		return fmt.Errorf("unknown status %q (want success, error, timeout or cancelled)", b)
	}
	return nil
}

// Result is an ExecResult: the one outcome of an assignment.
type Result struct {
	Version      string `json:"version"`
	AssignmentID string `json:"assignment_id"`
	RequestID    string `json:"request_id"`
	TenantID     string `json:"tenant_id"`
	TraceID      string `json:"trace_id,omitempty"`
	RunID        string `json:"run_id,omitempty"`
	ProviderID   string `json:"provider_id,omitempty"`
	// Job is the block type.
	Job    string `json:"job"`
	Status Status `json:"status"`
	// Outputs is the block's output object. Reading also accepts the
	// older name "result".
	Outputs json.RawMessage `json:"outputs,omitempty"`
	// ErrorCode is the error's name in upper snake case, such as
	// NETWORK_ERROR, and ErrorMessage its message: the older form.
	ErrorCode    string `json:"error_code,omitempty"`
	ErrorMessage string `json:"error_message,omitempty"`
	// Error is the newer form of the same error.
	Error       *ResultError      `json:"error,omitempty"`
	LatencyMS   int64             `json:"latency_ms"`
	RetriesUsed int               `json:"retries_used"`
	Attempts    int               `json:"attempts"`
	CompletedAt int64             `json:"completed_at"`
	Metadata    map[string]string `json:"metadata,omitempty"`
}

// UnmarshalJSON reads a result, accepting "result" for "outputs".
func (r *Result) UnmarshalJSON(b []byte) error {
	type plain Result
	var v struct {
		plain
		Legacy json.RawMessage `json:"result"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	*r = Result(v.plain)
	if len(r.Outputs) == 0 && len(v.Legacy) > 0 {
		r.Outputs = v.Legacy
	}
	return nil
}

// ResultError is a failed result's error: Code is the lower-snake name
// (network_error) and Number the numeric code beside it (3001).
type ResultError struct {
	Code         string `json:"code"`
	Number       uint32 `json:"number"`
	Message      string `json:"message"`
	Retryable    bool   `json:"retryable"`
	RetryAfterMS *int64 `json:"retry_after_ms,omitempty"`
}

// DeadLetter is what the worker publishes on SubjectDLQ for an assignment
// that can never succeed.
type DeadLetter struct {
	AssignmentID string `json:"assignment_id,omitempty"`
	RequestID    string `json:"request_id,omitempty"`
	TenantID     string `json:"tenant_id,omitempty"`
	TraceID      string `json:"trace_id,omitempty"`
	// Reason is the rule broken ("unsupported_version", "invalid_json",
	// "unsupported_job_type", "max_deliver", ...), Message the details.
	Reason     string `json:"reason"`
	Message    string `json:"message"`
	Deliveries uint64 `json:"deliveries"`
	WorkerID   string `json:"worker_id"`
	DeadAt     int64  `json:"dead_at"`
	// Assignment is the message as received when it is JSON;
	// AssignmentBase64 holds it otherwise.
	Assignment       json.RawMessage `json:"assignment,omitempty"`
	AssignmentBase64 []byte          `json:"assignment_base64,omitempty"`
}

// Heartbeat is a worker's periodic report on SubjectHeartbeat.
type Heartbeat struct {
	WorkerID string `json:"worker_id"`
	Version  string `json:"version"`
	// Status is "ready", "draining" or "disconnected".
	Status    string `json:"status"`
	Capacity  int    `json:"capacity"`
	InFlight  int    `json:"in_flight"`
	Timestamp int64  `json:"timestamp"`
	// Pools are the executor's pools: queued and running steps of each.
	Pools []PoolLoad `json:"pools"`
	// Breakers maps each dependency whose circuit breaker has been used to
	// its state: closed, half-open or open.
	Breakers map[string]string `json:"breakers,omitempty"`
}

// PoolLoad is one pool's load in a heartbeat.
type PoolLoad struct {
	Name       string `json:"name"`
	Capacity   int    `json:"capacity"`
	InFlight   int    `json:"in_flight"`
	QueueDepth int    `json:"queue_depth"`
	Backoff    int    `json:"backoff"`
}

// Cancel asks whichever worker holds an assignment to cancel it.
type Cancel struct {
	AssignmentID string `json:"assignment_id"`
	Reason       string `json:"reason,omitempty"`
}

// Health is the body of GET /_health.
type Health struct {
	Status    string `json:"status"`
	Timestamp string `json:"timestamp"`
	WorkerID  string `json:"worker_id,omitempty"`
	// Reason says why a worker is not healthy: "draining" or
	// "disconnected".
	Reason string `json:"reason,omitempty"`
}

// Validation reasons: the rules an assignment must follow, each named in
// the rejected ack, the dead letter and the result's error message.
const (
	ReasonInvalidJSON        = "invalid_json"
	ReasonUnsupportedVersion = "unsupported_version"
	ReasonMissingID          = "missing_id"
	ReasonInvalidID          = "invalid_id"
	ReasonMissingJobType     = "missing_job_type"
	ReasonUnsupportedJobType = "unsupported_job_type"
	ReasonInvalidOptions     = "invalid_options"
	ReasonInvalidJob         = "invalid_job"
	ReasonMaxDeliver         = "max_deliver"
)

// maxAttemptsLimit bounds options.retry.max_attempts: a router cannot ask
// a worker to retry without end.
const maxAttemptsLimit = 100

// DecodeAssignment reads and validates an assignment. Its error is a
// *ValidationError naming the rule broken; the assignment's ids are
// returned as far as they could be read, so a rejection can carry them.
func DecodeAssignment(data []byte) (*Assignment, error) {
	var a Assignment
	if err := json.Unmarshal(data, &a); err != nil {
		// Read what ids there are, for the rejection.
		var ids struct {
			AssignmentID any `json:"assignment_id"`
			RequestID    any `json:"request_id"`
			TenantID     any `json:"tenant_id"`
			TraceID      any `json:"trace_id"`
		}
		_ = json.Unmarshal(data, &ids)
		a = Assignment{AssignmentID: str(ids.AssignmentID), RequestID: str(ids.RequestID), TenantID: str(ids.TenantID), TraceID: str(ids.TraceID)}
		return &a, &ValidationError{Reason: ReasonInvalidJSON, Field: "", Message: "not an ExecAssignment: " + err.Error()}
	}
	return &a, a.Validate()
}

func str(v any) string {
	s, _ := v.(string)
	if len(s) > maxIDLen || !printable(s) {
		return ""
	}
	return s
}

// Validate checks the assignment's version, ids, job type and options;
// whether the job type is one the worker runs is decided by its Blocks.
func (a *Assignment) Validate() error {
	if a.Version != WireVersion {
		return &ValidationError{Reason: ReasonUnsupportedVersion, Field: "version",
			Message: fmt.Sprintf("version %q is not supported (want %q)", a.Version, WireVersion)}
	}
	for _, id := range []struct {
		field, v string
		need     bool
	}{{"assignment_id", a.AssignmentID, true}, {"request_id", a.RequestID, true}, {"tenant_id", a.TenantID, true},
		{"trace_id", a.TraceID, false}, {"run_id", a.RunID, false}, {"executor.provider_id", a.Executor.ProviderID, false}} {
		switch {
		case id.v == "" && id.need:
			return &ValidationError{Reason: ReasonMissingID, Field: id.field, Message: id.field + " is missing or empty"}
		case len(id.v) > maxIDLen || !printable(id.v):
			return &ValidationError{Reason: ReasonInvalidID, Field: id.field,
				Message: fmt.Sprintf("%s must be at most %d printable characters without spaces", id.field, maxIDLen)}
		}
	}
	if a.Job.Type == "" {
		return &ValidationError{Reason: ReasonMissingJobType, Field: "job.type", Message: "job.type is missing or empty"}
	}
	if t, ok := a.Job.Fields["timeout_ms"]; ok {
		if _, err := positiveMS(t); err != nil {
			return &ValidationError{Reason: ReasonInvalidOptions, Field: "job.timeout_ms", Message: "job.timeout_ms " + err.Error()}
		}
	}
	if o := a.Options; o != nil {
		if o.DeadlineMS < 0 {
			return &ValidationError{Reason: ReasonInvalidOptions, Field: "options.deadline_ms",
				Message: fmt.Sprintf("options.deadline_ms %d is negative", o.DeadlineMS)}
		}
		if o.Retry != nil && (o.Retry.MaxAttempts < 0 || o.Retry.MaxAttempts > maxAttemptsLimit) {
			return &ValidationError{Reason: ReasonInvalidOptions, Field: "options.retry.max_attempts",
				Message: fmt.Sprintf("options.retry.max_attempts %d is not between 0 and %d", o.Retry.MaxAttempts, maxAttemptsLimit)}
		}
		if o.Priority != "" {
			if _, err := executor.ParsePriority(o.Priority); err != nil {
				return &ValidationError{Reason: ReasonInvalidOptions, Field: "options.priority",
					Message: fmt.Sprintf("options.priority %q is not low, normal, high or critical", o.Priority)}
			}
		}
	}
	return nil
}

// positiveMS reads a positive number of milliseconds.
func positiveMS(raw json.RawMessage) (time.Duration, error) {
	var ms float64
	if err := json.Unmarshal(raw, &ms); err != nil || ms <= 0 || ms > float64(365*24*time.Hour/time.Millisecond) {
		return 0, fmt.Errorf("must be a positive number of milliseconds, not %s", raw)
	}
	return time.Duration(ms * float64(time.Millisecond)), nil
}

func printable(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if r <= ' ' || r == 0x7f {
			return false
		}
	}
	return true
}

// upperSnake turns an error code name into the older form: NETWORK_ERROR.
func upperSnake(c abi.Code) string { return strings.ToUpper(c.Name()) }

// resultError fills both error forms of r from e.
func (r *Result) setError(e *abi.Error) {
	if e == nil {
		return
	}
	r.ErrorCode, r.ErrorMessage = upperSnake(e.Code), e.Message
	r.Error = &ResultError{Code: e.Code.Name(), Number: uint32(e.Code), Message: e.Message,
		Retryable: e.Class == abi.ClassRetryable, RetryAfterMS: e.RetryAfterMS}
}

// newResult starts the result of a, carrying over every correlation id.
func newResult(a *Assignment, workerID string) *Result {
	r := &Result{
		Version: WireVersion, AssignmentID: a.AssignmentID, RequestID: a.RequestID, TenantID: a.TenantID,
		TraceID: a.TraceID, RunID: a.RunID, ProviderID: a.Executor.ProviderID, Job: a.Job.Type,
		Metadata: map[string]string{"worker_id": workerID},
	}
	if a.Job.Type != "" {
		r.Metadata["block_type"] = a.Job.Type
	}
	return r
}

// fromStep fills r from the executor's result of the step.
func (r *Result) fromStep(res *abi.StepResult, accepted time.Time, output func(*abi.StepResult) json.RawMessage) {
	switch res.Status {
	case abi.StatusSuccess:
		r.Status = StatusSuccess
	case abi.StatusTimeout:
		r.Status = StatusTimeout
	case abi.StatusCancelled:
		r.Status = StatusCancelled
	default:
		r.Status = StatusError
	}
	switch {
	case output != nil:
		r.Outputs = output(res)
	case len(res.Output) > 0:
		r.Outputs = res.Output
	case res.OutputText != nil:
		r.Outputs, _ = json.Marshal(map[string]string{"output_text": *res.OutputText})
	case res.OutputBase64 != nil:
		r.Outputs, _ = json.Marshal(map[string][]byte{"output_base64": res.OutputBase64})
	}
	r.setError(res.Error)
	r.Attempts, r.RetriesUsed = res.Attempts, res.RetriesUsed
	r.complete(accepted)
	if res.StepID != "" {
		r.Metadata["step_id"] = res.StepID
	}
}

func (r *Result) complete(accepted time.Time) {
	now := time.Now()
	r.LatencyMS = now.Sub(accepted).Milliseconds()
	r.CompletedAt = now.UnixMilli()
}

// failure is the result of an assignment that did not run.
func failure(a *Assignment, workerID string, status Status, e *abi.Error, accepted time.Time) *Result {
	r := newResult(a, workerID)
	r.Status = status
	r.setError(e)
	r.complete(accepted)
	return r
}

// ackOf builds the ack of one delivery.
func ackOf(a *Assignment, workerID string, status AckStatus, reason, msg string) *AssignmentAck {
	return &AssignmentAck{AssignmentID: a.AssignmentID, RequestID: a.RequestID, TenantID: a.TenantID, TraceID: a.TraceID,
		Status: status, Reason: reason, Message: msg, WorkerID: workerID, AcknowledgedAt: time.Now().UnixMilli()}
}

// NewID returns a fresh 32-hex-digit id for a line of `blockhost submit`
// without one.
func NewID() string {
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], uint64(time.Now().UnixMilli())<<16)
	_, _ = rand.Read(b[6:])
	return hex.EncodeToString(b[:])
}
