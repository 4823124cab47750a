// Package serve is `blockhost serve`: an HTTP API that runs steps for
// tenants through the executor, hosts the human.approval block, keeps its
// state in SQLite and serves a status page. docs/serve.md describes the
// API, the configuration and the page.
//
// A Server is built once from an immutable Config and is safe for
// concurrent use. Its guarantees, each proved by a test:
//
//   - Nothing is anonymous unless the server is told so (WithInsecureLocal,
//     loopback only): every request but the health check carries a bearer
//     token from the configuration, a tenant sees and acts on its own steps
//     only, and only an identity an approval lists, of the step's tenant,
//     decides it.
//   - Bad requests are answered 4xx with a JSON error naming the field;
//     bodies are capped; grants and limits come from the catalog, never
//     from a request.
//   - A step is stored before its submission is answered, a decision
//     before it is acknowledged, a result before anyone waiting is told,
//     each in one SQLite transaction committed to disk.
//   - A waiting approval holds a row and a timer: no goroutine, no
//     executor worker, no instance. It ends exactly once: decided, expired
//     at its deadline, or withdrawn by cancellation.
//   - After a restart, finished steps keep their results, pending
//     approvals wait again with their deadlines, steps that never started
//     run, and a step that had started is reported as error internal_error
//     "host stopped during the step" — or run again when its request
//     allowed it and its block is idempotent. Nothing stays unfinished.
//   - Shutdown stops accepting, lets running steps finish within its
//     context, and hands back the rest by the same rules; pending
//     approvals are kept.
package serve
