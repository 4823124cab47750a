// Package worker runs blockhost as a fleet worker on NATS JetStream,
// speaking the router's wire contract (docs/worker.md): it takes
// ExecAssignments from the subject caf.exec.assign.v1, runs each through
// a host/executor Executor, and publishes one ExecResult per assignment
// on caf.exec.result.v1, with acks on caf.exec.assign.v1.ack, dead
// letters on caf.exec.dlq.v1, heartbeats on caf.worker.heartbeat.v1 and
// cancellation on caf.exec.cancel.v1. StartServer embeds a nats-server
// with JetStream file storage for a fleet of one machine.
//
// Every worker shares one durable pull consumer of a work-queue stream,
// so each assignment is held by one worker at a time. The guarantees,
// each proved by a test (docs/worker.md lists them):
//
//   - Every assignment ends in a result, never silently: a valid one is
//     run and its result published; an invalid one, one whose job type is
//     not configured, and one delivered more than MaxDeliver times are
//     rejected in the ack, sent to the dead-letter subject with the
//     reason, and answered with an error result.
//   - An assignment is acknowledged to JetStream only after the results
//     stream has stored its result. Results carry the assignment id as
//     their message id, so a result published twice (a worker died after
//     publishing, before acknowledging) is dropped by the results stream
//     inside its duplicate window: consumers of the stream see one
//     result per assignment.
//   - A held assignment is kept alive with in-progress signals, so it is
//     not delivered again while it runs; the assignments of a worker
//     that dies (kill -9, a lost machine) are delivered again to another
//     worker after the ack wait.
//   - A worker fetches only as many assignments as it has free slots;
//     what it has no room for stays in the stream for a worker with room,
//     and a step the executor refuses for overload is handed back (nak
//     with delay), never failed.
//   - Shutdown stops fetching, hands back what was fetched and not
//     started, and lets running steps finish; CancelRunning cancels them
//     with their cancelled results published.
//   - Blocks, grants and limits come from the operator's Blocks, never
//     from an assignment: the job only picks a configured type and
//     supplies the step's input.
//   - A human.approval step holds no slot, instance or goroutine while it
//     waits: its approval is stored in the BucketApprovals key-value
//     bucket and its assignment acknowledged. It ends exactly once — a
//     listed approver's decision on DecideSubject, its deadline, or a
//     cancel request — by a compare-and-set on its record, survives
//     restarts of the worker and its server, and its result is published
//     like any other.
//
// Steps are at least once: a step whose worker died mid-step runs again
// elsewhere. The results stream, not the execution, is exactly once.
package worker
