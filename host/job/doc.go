// Package job is the request model shared by everything that runs steps on
// behalf of someone else: `blockhost run` and `blockhost batch`, the NATS
// worker and the HTTP server. It turns a Request — the JSON object of a batch
// line, a message or a request body — into an executor.Request, and runs it.
//
// A Service is built once from an immutable Config and is safe for
// concurrent use. It owns one executor (host/executor), one host.Runtime per
// engine and a cache of loaded blocks: a module path, a built-in block's
// name (package plugins) or a manifest is loaded once and reused by every
// request that names it.
//
// Its guarantees:
//
//   - One override rule, by construction. Each setting of a step comes from
//     the first of these that sets it: the operator's overrides
//     (Config.WithOverrides, the command-line flags), the request, the
//     manifest, the host's and the executor's defaults. Flags win. Grants
//     are the exception that adds up: the environment, HTTP and directory
//     grants of the overrides are added to the manifest's (an override
//     replaces a manifest's grant only for the same variable or guest
//     path), and a request may add environment variables.
//   - A request is checked whole before it runs. Every problem is an error
//     that names the request field, matching ErrInvalidRequest (a
//     *FieldError), or names the block that cannot be loaded, matching
//     ErrLoad (a *LoadError). Nothing is silently ignored: unknown fields,
//     two inputs, a retry.max_attempts of 0 are errors.
//   - A request's step ID is kept: ParseRequest returns the step_id of a
//     line it cannot accept whenever the line says one, and a request that
//     shares an idempotency key with a step still running gets the shared
//     result under its own step ID, with Ticket.DuplicateOf naming the other.
//   - Grants come only from the operator: a manifest, the overrides, and
//     environment variables of a request (whose author is the operator who
//     wrote the batch file). Nothing in a step's input grants anything.
//
// See docs/cli.md for the JSON form of a Request.
package job
