package executor

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/blockhost/blockhost/host"
)

// Request is one step to run.
type Request struct {
	// Runner is the block: a *host.Block or a *host.NativeBlock.
	Runner host.Runner
	// Step is what each attempt runs. Step.ID names the step in its result
	// and in every attempt; the executor makes one when it is empty.
	// Step.Limits.Timeout bounds each attempt; zero means the executor's
	// attempt timeout.
	Step host.Step

	// Pool is the resource pool the step runs in; empty means DefaultPool.
	Pool string
	// Priority orders the step in its pool's queue.
	Priority Priority
	// TenantID is whom the step runs for; a pool's TenantLimit applies per
	// tenant. Empty is a tenant of its own.
	TenantID string
	// TraceID, RunID and FlowID correlate the step with the work around
	// it; the executor logs them.
	TraceID, RunID, FlowID string
	// IdempotencyKey, when set, makes a second Submit with the same key
	// while the first step is unfinished return a ticket for that first
	// step instead of running the work twice.
	IdempotencyKey string
	// Dependency names what the step depends on — an HTTP host:port, a
	// file-system grant, a database — for its circuit breaker and retry
	// budget. Empty means none: no breaker and no budget apply.
	Dependency string

	// Retry is the step's retry policy; zero fields take the executor's.
	Retry RetryPolicy
	// TotalDeadline bounds all attempts and waits, counted from Submit;
	// zero means the executor's.
	TotalDeadline time.Duration
	// QueueTimeout bounds the wait for the first attempt; zero means the
	// executor's.
	QueueTimeout time.Duration

	// ExtendedGrants lists the grants the operator added to a manifest's
	// with --extend-grants (job.Settings.Extensions), for the audit
	// record of the step; empty when the manifest's grants are all. The
	// executor does not read it: Step.Grants are what the step gets.
	ExtendedGrants []string
}

// Priority orders queued steps: a higher priority runs first, except
// that a step waiting longer than its pool's AgingLimit runs before any
// fresher one. The zero value is PriorityNormal.
type Priority int8

// The priorities, lowest first.
const (
	PriorityLow      Priority = -1
	PriorityNormal   Priority = 0
	PriorityHigh     Priority = 1
	PriorityCritical Priority = 2
)

const numLevels = int(PriorityCritical-PriorityLow) + 1

var priorityNames = [numLevels]string{"low", "normal", "high", "critical"}

// Valid reports whether p is one of the four priorities.
func (p Priority) Valid() bool { return p >= PriorityLow && p <= PriorityCritical }

func (p Priority) level() int { return int(p - PriorityLow) }

// String returns the priority's name, such as "high".
func (p Priority) String() string {
	if p.Valid() {
		return priorityNames[p.level()]
	}
	return "priority(" + strconv.Itoa(int(p)) + ")"
}

// ParsePriority reads a priority by name (low, normal, high, critical)
// or as its number (-1 to 2).
func ParsePriority(s string) (Priority, error) {
	for i, n := range priorityNames {
		if strings.EqualFold(s, n) {
			return Priority(i) + PriorityLow, nil
		}
	}
	if n, err := strconv.Atoi(s); err == nil && Priority(n).Valid() && n == int(Priority(n)) {
		return Priority(n), nil
	}
	return 0, fmt.Errorf("executor: unknown priority %q (want low, normal, high or critical)", s)
}

// MarshalText writes the priority's name.
func (p Priority) MarshalText() ([]byte, error) {
	if !p.Valid() {
		return nil, fmt.Errorf("executor: invalid priority %d", int(p))
	}
	return []byte(p.String()), nil
}

// UnmarshalText reads a priority as ParsePriority does.
func (p *Priority) UnmarshalText(b []byte) error {
	v, err := ParsePriority(string(b))
	if err != nil {
		return err
	}
	*p = v
	return nil
}

// UnmarshalJSON reads a priority as a JSON string (a name or a number) or
// a JSON number from -1 to 2.
func (p *Priority) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		s = string(b)
	}
	return p.UnmarshalText([]byte(s))
}
