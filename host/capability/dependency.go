package capability

import "context"

// DependencyTrace hears, through a step's context, which dependencies the
// step's capability operations reached and how they answered: to
// TraceDependency, dependency names one ("sql:orders"), unhealthy is true
// when the operation failed in a way that says the dependency is
// unhealthy (a retryable failure: a refused connection, too many
// connections, a deadlock) and false when the dependency answered, with a
// result or a permanent error. (An interface rather than a function, so
// that a pointer installs it without an allocation per step.)
//
// The executor installs one for every attempt, so that a failure a block
// returns after such an operation counts against that dependency's
// circuit breaker and retry budget, though the request named no
// dependency (docs/failure-model.md). It is called on the goroutine
// running the step, and may be called after the attempt was abandoned:
// it must be safe for concurrent use and must not block.
type DependencyTrace interface {
	TraceDependency(dependency string, unhealthy bool)
}

type traceKey struct{}

// WithDependencyTrace returns a copy of ctx that carries trace: every
// capability operation run under it reports to trace. A nil trace removes
// the one ctx carries.
func WithDependencyTrace(ctx context.Context, trace DependencyTrace) context.Context {
	return context.WithValue(ctx, traceKey{}, trace)
}

// ReportDependency tells the DependencyTrace that ctx carries, if any,
// how an operation against dependency ended. A capability calls it once
// for every operation that reached the dependency, never for one it
// refused itself (a denied grant, a cap). It costs a context lookup when
// no trace is installed.
func ReportDependency(ctx context.Context, dependency string, unhealthy bool) {
	if t, ok := ctx.Value(traceKey{}).(DependencyTrace); ok && t != nil {
		t.TraceDependency(dependency, unhealthy)
	}
}
