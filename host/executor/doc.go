// Package executor runs steps reliably: it queues them by pool and
// priority, runs each attempt through a host.Runner, retries what may
// succeed later, and stops what must stop.
//
// An Executor is built once from an immutable Config and is safe for
// concurrent use. Its guarantees, each proved by a test (see
// docs/failure-model.md for the table):
//
//   - Submit never blocks and every submitted step ends in exactly one
//     result with one of the four statuses, including steps refused at
//     the door, evicted from a queue, timed out in a queue or cancelled at
//     any point.
//   - Queues are bounded. A pool holds at most Concurrency + QueueSize
//     steps (queued, running or waiting to retry); when it is full the
//     lowest-priority queued work is refused first, with system_overload
//     and a retry-after hint. Priorities are strict, with aging: a step
//     that has waited AgingLimit runs before any fresher step, so no
//     priority starves. A tenant may hold at most TenantLimit of a pool.
//   - The counts of queued, running, backing-off and abandoned steps of a
//     pool change together under one lock, so every snapshot satisfies
//     queued + in flight ≤ capacity.
//   - Only errors classed retryable are retried, never permission_denied,
//     quota_exceeded, a cancellation, a timeout of the block's own
//     computation or an open circuit. Waits use exponential backoff with
//     full jitter; a dependency's Retry-After is honoured, clamped to the
//     policy's maximum interval. Before each wait the total deadline is
//     checked: a wait that would pass it ends the step at once as timeout,
//     keeping the last attempt's error.
//   - Cancellation works at every point — queued, running, in a host call,
//     waiting to retry — and ends the step as cancelled promptly. Whether
//     a step ended as cancelled or as timeout is decided by the recorded
//     cause of its context, never by which event reached the executor
//     first.
//   - Each dependency has a circuit breaker (github.com/sony/gobreaker/v2)
//     that counts only failures saying the dependency is unhealthy, and a
//     retry budget that keeps retries to a fraction of its active steps.
//     A step's dependency is the request's, or the one its capabilities
//     last found unhealthy (capability.ReportDependency): a WebAssembly
//     block's retryable failure after a refused connection to database
//     orders counts against sql:orders, whose breaker and budget then
//     govern the step's retries.
//   - Metrics go to the Prometheus registerer given in the Config; nothing
//     is registered globally.
package executor
