package executor

import (
	"cmp"
	"fmt"
	"maps"
	"math"
	"math/rand/v2"
	"runtime"
	"slices"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/blockhost/blockhost/abi"
)

// DefaultPool is the pool a Request without a Pool runs in.
const DefaultPool = "default"

// RetryPolicy says how often and how patiently a step is tried. A zero
// field takes the value of the executor's policy, whose zero fields take
// DefaultRetryPolicy's.
type RetryPolicy struct {
	// MaxAttempts counts the first attempt: 1 means never retry.
	// Default 3.
	MaxAttempts int
	// Initial is the upper bound of the first wait. Default 1s.
	Initial time.Duration
	// Multiplier grows the bound after each wait. At least 1; default 2.
	Multiplier float64
	// MaxInterval caps every wait, the Retry-After a dependency asks for
	// included. Default 30s.
	MaxInterval time.Duration
	// NonRetryable lists codes never retried even when classed retryable,
	// in addition to those the executor never retries (permission_denied,
	// quota_exceeded, cancelled_by_user, cancelled_by_timeout). Lists are
	// merged, not replaced.
	NonRetryable []abi.Code
}

// DefaultRetryPolicy is the policy of issue 6: three attempts, waits drawn
// from [0, 1s], [0, 2s], … capped at 30s.
var DefaultRetryPolicy = RetryPolicy{MaxAttempts: 3, Initial: time.Second, Multiplier: 2, MaxInterval: 30 * time.Second}

// Or returns p with each zero field taken from d; NonRetryable lists are
// merged.
func (p RetryPolicy) Or(d RetryPolicy) RetryPolicy {
	if p.MaxAttempts == 0 {
		p.MaxAttempts = d.MaxAttempts
	}
	if p.Initial == 0 {
		p.Initial = d.Initial
	}
	if p.Multiplier == 0 {
		p.Multiplier = d.Multiplier
	}
	if p.MaxInterval == 0 {
		p.MaxInterval = d.MaxInterval
	}
	if len(d.NonRetryable) > 0 {
		merged := slices.Concat(p.NonRetryable, d.NonRetryable)
		slices.Sort(merged)
		p.NonRetryable = slices.Compact(merged)
	}
	return p
}

// Validate reports the first field of a resolved policy that is out of
// range.
func (p RetryPolicy) Validate() error {
	switch {
	case p.MaxAttempts < 1:
		return &ConfigError{Field: "retry MaxAttempts", Problem: fmt.Sprintf("%d: must be at least 1", p.MaxAttempts)}
	case p.Initial <= 0:
		return &ConfigError{Field: "retry Initial", Problem: fmt.Sprintf("%s: must be positive", p.Initial)}
	case p.Multiplier < 1 || math.IsNaN(p.Multiplier) || math.IsInf(p.Multiplier, 0):
		return &ConfigError{Field: "retry Multiplier", Problem: fmt.Sprintf("%g: must be a finite number of at least 1", p.Multiplier)}
	case p.MaxInterval < p.Initial:
		return &ConfigError{Field: "retry MaxInterval", Problem: fmt.Sprintf("%s: must be at least Initial (%s)", p.MaxInterval, p.Initial)}
	}
	for _, c := range p.NonRetryable {
		if !c.Valid() {
			return &ConfigError{Field: "retry NonRetryable", Problem: fmt.Sprintf("%d is not an error code", uint32(c))}
		}
	}
	return nil
}

// PoolConfig sizes one resource pool. Every field is explicit: a pool's
// capacity is a decision, not a default.
type PoolConfig struct {
	// Concurrency is how many attempts may run at once. At least 1.
	Concurrency int
	// QueueSize is how many more steps the pool accepts beyond those
	// running: its capacity is Concurrency + QueueSize. Zero means a step
	// is accepted only when a worker is free or when it can take the place
	// of lower-priority queued work.
	QueueSize int
	// TenantLimit is the most steps one tenant may hold in the pool at
	// once, queued, running or waiting to retry. Zero means no limit.
	TenantLimit int
	// AgingLimit is how long a queued step waits before it runs ahead of
	// every fresher step, whatever their priorities. Zero means the
	// default, 10s.
	AgingLimit time.Duration
}

// DefaultAgingLimit is PoolConfig.AgingLimit's default.
const DefaultAgingLimit = 10 * time.Second

// DefaultPoolConfig is the default pool's size unless configured: one
// worker per processor and a queue of 1024.
func DefaultPoolConfig() PoolConfig {
	return PoolConfig{Concurrency: runtime.GOMAXPROCS(0), QueueSize: 1024}
}

func (p PoolConfig) validate(name string) error {
	field := func(f string) string { return fmt.Sprintf("pool %q: %s", name, f) }
	switch {
	case name == "":
		return &ConfigError{Field: "pool name", Problem: "must not be empty"}
	case p.Concurrency < 1:
		return &ConfigError{Field: field("Concurrency"), Problem: fmt.Sprintf("%d: must be at least 1", p.Concurrency)}
	case p.QueueSize < 0:
		return &ConfigError{Field: field("QueueSize"), Problem: fmt.Sprintf("%d: must not be negative", p.QueueSize)}
	case p.TenantLimit < 0:
		return &ConfigError{Field: field("TenantLimit"), Problem: fmt.Sprintf("%d: must not be negative", p.TenantLimit)}
	case p.AgingLimit < 0:
		return &ConfigError{Field: field("AgingLimit"), Problem: fmt.Sprintf("%s: must not be negative", p.AgingLimit)}
	}
	return nil
}

// BreakerConfig configures the circuit breaker of every dependency. A zero
// field means its default.
type BreakerConfig struct {
	// Disabled turns circuit breaking off.
	Disabled bool
	// ConsecutiveFailures opens the circuit after this many unhealthy
	// failures in a row. Default 5.
	ConsecutiveFailures uint32
	// FailureRatio opens the circuit when at least this fraction of the
	// attempts in the rolling Window were unhealthy failures, once there
	// were MinRequests of them. Default 0.5.
	FailureRatio float64
	// MinRequests is the fewest attempts in the Window for FailureRatio
	// to apply. Default 20.
	MinRequests uint32
	// Window is the rolling window of FailureRatio, kept in ten buckets.
	// Default 60s.
	Window time.Duration
	// OpenFor is how long an open circuit refuses attempts before it lets
	// probes through. Default 30s.
	OpenFor time.Duration
	// HalfOpenProbes is how many attempts a half-open circuit lets
	// through at once; that many successes close it and one failure opens
	// it again. Default 1.
	HalfOpenProbes uint32
}

// Or returns b with each zero field taken from d.
func (b BreakerConfig) Or(d BreakerConfig) BreakerConfig {
	if b.ConsecutiveFailures == 0 {
		b.ConsecutiveFailures = d.ConsecutiveFailures
	}
	if b.FailureRatio == 0 {
		b.FailureRatio = d.FailureRatio
	}
	if b.MinRequests == 0 {
		b.MinRequests = d.MinRequests
	}
	if b.Window == 0 {
		b.Window = d.Window
	}
	if b.OpenFor == 0 {
		b.OpenFor = d.OpenFor
	}
	if b.HalfOpenProbes == 0 {
		b.HalfOpenProbes = d.HalfOpenProbes
	}
	return b
}

// DefaultBreakerConfig holds BreakerConfig's defaults.
var DefaultBreakerConfig = BreakerConfig{
	ConsecutiveFailures: 5, FailureRatio: 0.5, MinRequests: 20,
	Window: time.Minute, OpenFor: 30 * time.Second, HalfOpenProbes: 1,
}

// BudgetConfig configures the retry budget of every dependency: at any
// moment, at most max(MinRetries, Ratio × active steps) of a dependency's
// steps may be retrying. A zero field means its default.
type BudgetConfig struct {
	// Disabled turns the budget off.
	Disabled bool
	// Ratio is the fraction of a dependency's active steps that may be
	// retrying at once. Default 0.2.
	Ratio float64
	// MinRetries is how many steps may retry at once however few are
	// active. Default 3.
	MinRetries int
}

// DefaultBudgetConfig holds BudgetConfig's defaults.
var DefaultBudgetConfig = BudgetConfig{Ratio: 0.2, MinRetries: 3}

// Or returns b with each zero field taken from d.
func (b BudgetConfig) Or(d BudgetConfig) BudgetConfig {
	if b.Ratio == 0 {
		b.Ratio = d.Ratio
	}
	if b.MinRetries == 0 {
		b.MinRetries = d.MinRetries
	}
	return b
}

// Default deadlines; each can be set for the executor and for one step.
const (
	DefaultAttemptTimeout = 30 * time.Second
	DefaultTotalDeadline  = 5 * time.Minute
	DefaultQueueTimeout   = time.Minute
	DefaultAbandonAfter   = 250 * time.Millisecond
)

// Config configures an Executor. It is immutable: each With method
// returns a modified copy, and New validates it once.
type Config struct {
	pools          map[string]PoolConfig
	retry          RetryPolicy
	attemptTimeout time.Duration
	totalDeadline  time.Duration
	queueTimeout   time.Duration
	abandonAfter   time.Duration
	breaker        BreakerConfig
	budget         BudgetConfig
	classifier     Classifier
	registerer     prometheus.Registerer
	logger         hclog.Logger
	rand           rand.Source
}

// NewConfig returns the defaults: the default pool sized by
// DefaultPoolConfig, DefaultRetryPolicy, the default deadlines, circuit
// breakers and retry budgets on with their defaults, DefaultClassifier,
// no metrics registration and a logger that discards.
func NewConfig() Config {
	return Config{
		pools:          map[string]PoolConfig{DefaultPool: DefaultPoolConfig()},
		retry:          DefaultRetryPolicy,
		attemptTimeout: DefaultAttemptTimeout,
		totalDeadline:  DefaultTotalDeadline,
		queueTimeout:   DefaultQueueTimeout,
		abandonAfter:   DefaultAbandonAfter,
		breaker:        DefaultBreakerConfig,
		budget:         DefaultBudgetConfig,
	}
}

// WithPool adds the pool name, or replaces its configuration.
func (c Config) WithPool(name string, p PoolConfig) Config {
	c.pools = maps.Clone(c.pools)
	if c.pools == nil {
		c.pools = map[string]PoolConfig{}
	}
	c.pools[name] = p
	return c
}

// WithRetryPolicy sets the policy of steps that do not set their own;
// zero fields keep DefaultRetryPolicy's.
func (c Config) WithRetryPolicy(p RetryPolicy) Config {
	c.retry = p.Or(DefaultRetryPolicy)
	return c
}

// WithAttemptTimeout bounds each attempt of a step that sets no timeout
// of its own (host.Step.Limits.Timeout). Zero keeps the default, 30s.
func (c Config) WithAttemptTimeout(d time.Duration) Config {
	c.attemptTimeout = cmp.Or(d, DefaultAttemptTimeout)
	return c
}

// WithTotalDeadline bounds all attempts and waits of a step that sets no
// total deadline of its own, counted from Submit. Zero keeps the default,
// 5m.
func (c Config) WithTotalDeadline(d time.Duration) Config {
	c.totalDeadline = cmp.Or(d, DefaultTotalDeadline)
	return c
}

// WithQueueTimeout bounds how long a step may wait in its queue before
// its first attempt; one that waits longer ends as timeout, never
// started. Zero keeps the default, 60s.
func (c Config) WithQueueTimeout(d time.Duration) Config {
	c.queueTimeout = cmp.Or(d, DefaultQueueTimeout)
	return c
}

// WithAbandonAfter sets how long the executor waits for an attempt to
// return once its step was cancelled or timed out. After that the step's
// result is delivered without it, and the attempt is counted as abandoned
// until it returns; it keeps its worker until then, so a block that
// ignores cancellation slows its own pool but cannot overload the host.
// Zero keeps the default, 250ms.
func (c Config) WithAbandonAfter(d time.Duration) Config {
	c.abandonAfter = cmp.Or(d, DefaultAbandonAfter)
	return c
}

// WithBreaker configures circuit breakers; zero fields keep
// DefaultBreakerConfig's.
func (c Config) WithBreaker(b BreakerConfig) Config {
	c.breaker = b.Or(DefaultBreakerConfig)
	return c
}

// WithRetryBudget configures retry budgets; zero fields keep
// DefaultBudgetConfig's.
func (c Config) WithRetryBudget(b BudgetConfig) Config {
	c.budget = b.Or(DefaultBudgetConfig)
	return c
}

// WithClassifier replaces DefaultClassifier. Nil restores it.
func (c Config) WithClassifier(cl Classifier) Config {
	c.classifier = cl
	return c
}

// WithRegisterer registers the executor's metrics with r. Nil, the
// default, registers nothing; nothing is ever registered globally.
func (c Config) WithRegisterer(r prometheus.Registerer) Config {
	c.registerer = r
	return c
}

// WithLogger sets the logger, narrowed to "executor". Nil discards.
func (c Config) WithLogger(l hclog.Logger) Config {
	c.logger = l
	return c
}

// WithRandSource draws backoff jitter from src instead of the runtime's
// random numbers, for reproducible tests. The executor serialises its
// calls to src.
func (c Config) WithRandSource(src rand.Source) Config {
	c.rand = src
	return c
}

func (c Config) validate() error {
	if len(c.pools) == 0 {
		return &ConfigError{Field: "pools", Problem: "none configured"}
	}
	for _, name := range slices.Sorted(maps.Keys(c.pools)) {
		if err := c.pools[name].validate(name); err != nil {
			return err
		}
	}
	if err := c.retry.Validate(); err != nil {
		return err
	}
	for _, d := range []struct {
		name string
		d    time.Duration
	}{{"attempt timeout", c.attemptTimeout}, {"total deadline", c.totalDeadline}, {"queue timeout", c.queueTimeout}, {"abandon after", c.abandonAfter}} {
		if d.d <= 0 {
			return &ConfigError{Field: d.name, Problem: fmt.Sprintf("%s: must be positive", d.d)}
		}
	}
	if b := c.breaker; !b.Disabled {
		if b.FailureRatio <= 0 || b.FailureRatio > 1 {
			return &ConfigError{Field: "breaker FailureRatio", Problem: fmt.Sprintf("%g: must be in (0, 1]", b.FailureRatio)}
		}
		if b.Window <= 0 || b.OpenFor <= 0 {
			return &ConfigError{Field: "breaker Window and OpenFor", Problem: "must be positive"}
		}
	}
	if b := c.budget; !b.Disabled && (b.Ratio < 0 || b.MinRetries < 0) {
		return &ConfigError{Field: "retry budget", Problem: "Ratio and MinRetries must not be negative"}
	}
	return nil
}
