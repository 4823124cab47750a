package manifest

import (
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"

	"github.com/blockhost/blockhost/abi"
)

// Schedule is how an executor runs the block's steps: their priority,
// their deadlines and their retry policy. A zero field is unset and the
// executor's default applies (see docs/manifest.md).
type Schedule struct {
	// Priority is "low", "normal", "high" or "critical", or empty.
	Priority string
	// TotalDeadline bounds all attempts of a step and the waits between
	// them, from the moment the step is accepted.
	TotalDeadline time.Duration
	// QueueTimeout bounds how long a step may wait for its first attempt.
	QueueTimeout time.Duration
	// Retry is the retry block.
	Retry Retry
}

// Retry is a manifest's retry block. A zero field is unset.
type Retry struct {
	// MaxAttempts counts the first attempt; 1 means never retry.
	MaxAttempts int
	// BackoffInitial bounds the first wait between attempts.
	BackoffInitial time.Duration
	// BackoffMultiplier grows the bound after each wait; at least 1.
	BackoffMultiplier float64
	// BackoffMax caps every wait.
	BackoffMax time.Duration
	// NonRetryable lists codes never retried, even when classed
	// retryable. It is nil when unset.
	NonRetryable []abi.Code
}

// priorities are the executor's priority names (host/executor.Priority),
// repeated here because a manifest is read before any executor exists.
var priorities = []string{"low", "normal", "high", "critical"}

var retrySchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{
		{Name: "max_attempts"}, {Name: "backoff_initial"}, {Name: "backoff_multiplier"},
		{Name: "backoff_max"}, {Name: "non_retryable"},
	},
}

// schedule decodes the block's priority, total_deadline and queue_timeout
// attributes and its retry block.
func (d *decoder) schedule(content *hcl.BodyContent, m *Manifest) {
	s := &m.Schedule
	if attr, ok := content.Attributes["priority"]; ok {
		if p, ok := d.string(attr.Expr, "priority", "priority"); ok {
			found := false
			for _, name := range priorities {
				if strings.EqualFold(p, name) {
					s.Priority, found = name, true
				}
			}
			if !found {
				d.errorf(attr.Expr.Range(), "Invalid priority", "%q is not a priority; use low, normal, high or critical.", p)
			}
		}
	}
	s.TotalDeadline = d.scheduleDuration(content.Attributes["total_deadline"], "total_deadline")
	s.QueueTimeout = d.scheduleDuration(content.Attributes["queue_timeout"], "queue_timeout")
	if blk := d.single(content.Blocks, "retry"); blk != nil {
		s.Retry = d.retry(blk)
	}
}

func (d *decoder) retry(blk *hcl.Block) Retry {
	var r Retry
	content, diags := blk.Body.Content(retrySchema)
	d.diags = append(d.diags, diags...)
	if attr, ok := content.Attributes["max_attempts"]; ok {
		if s, ok := d.string(attr.Expr, "max_attempts", "max_attempts"); ok {
			n, err := strconv.Atoi(s)
			if err != nil || n < 1 {
				d.errorf(attr.Expr.Range(), "Invalid max_attempts",
					"max_attempts counts the first attempt and must be a whole number of at least 1, not %q.", s)
			} else {
				r.MaxAttempts = n
			}
		}
	}
	r.BackoffInitial = d.scheduleDuration(content.Attributes["backoff_initial"], "backoff_initial")
	r.BackoffMax = d.scheduleDuration(content.Attributes["backoff_max"], "backoff_max")
	if attr, ok := content.Attributes["backoff_multiplier"]; ok {
		if s, ok := d.string(attr.Expr, "backoff_multiplier", "backoff_multiplier"); ok {
			f, err := strconv.ParseFloat(s, 64)
			if err != nil || f < 1 || math.IsInf(f, 0) || math.IsNaN(f) {
				d.errorf(attr.Expr.Range(), "Invalid backoff_multiplier", "backoff_multiplier must be a number of at least 1, not %q.", s)
			} else {
				r.BackoffMultiplier = f
			}
		}
	}
	if r.BackoffInitial > 0 && r.BackoffMax > 0 && r.BackoffMax < r.BackoffInitial {
		d.errorf(content.Attributes["backoff_max"].Expr.Range(), "Invalid backoff_max",
			"backoff_max (%s) must be at least backoff_initial (%s).", r.BackoffMax, r.BackoffInitial)
	}
	if attr, ok := content.Attributes["non_retryable"]; ok {
		r.NonRetryable = d.codes(attr.Expr)
	}
	return r
}

// codes decodes a list of error codes, each a name or a number.
func (d *decoder) codes(expr hcl.Expression) []abi.Code {
	elems, diags := hcl.ExprList(expr)
	if diags.HasErrors() {
		d.errorf(expr.Range(), "Invalid non_retryable",
			`non_retryable must be a list of error codes, such as ["http_error", 2002].`)
		return nil
	}
	codes := make([]abi.Code, 0, len(elems))
	for _, elem := range elems {
		s, ok := d.string(elem, "non_retryable", "each code")
		if !ok {
			continue
		}
		c, err := abi.ParseCode(s)
		if err != nil {
			d.errorf(elem.Range(), "Invalid non_retryable", "%q is not an error code; use a name such as \"http_error\" or a number such as 3003.", s)
			continue
		}
		codes = append(codes, c)
	}
	return codes
}

// scheduleDuration decodes an optional positive duration attribute.
func (d *decoder) scheduleDuration(attr *hcl.Attribute, name string) time.Duration {
	if attr == nil {
		return 0
	}
	s, ok := d.string(attr.Expr, name, name)
	if !ok {
		return 0
	}
	t, err := time.ParseDuration(s)
	switch {
	case err != nil:
		d.errorf(attr.Expr.Range(), "Invalid "+name,
			`%q is not a duration; use Go duration syntax such as "500ms", "5s" or "1m30s".`, s)
	case t <= 0:
		d.errorf(attr.Expr.Range(), "Invalid "+name, "%s must be greater than zero, not %q.", name, s)
	default:
		return t
	}
	return 0
}
