// Package wasmtime is the blockhost engine backed by wasmtime
// (github.com/bytecodealliance/wasmtime-go), which compiles WebAssembly to
// native code with Cranelift. Importing it registers the engine under the
// name "wasmtime". It needs cgo: in a binary built with CGO_ENABLED=0 the
// name is still registered, and creating the engine fails with an error
// that matches engine.ErrUnavailable and says how to get it.
//
// The engine keeps every guarantee of package engine:
//
//   - Interruption uses wasmtime's epoch deadlines. Compiled code checks the
//     engine's epoch at every function entry and loop back-edge; a ticker
//     owned by the engine advances it every millisecond while runs are in
//     flight (and stops on Close), and each run's store calls a C callback
//     (shim.c) at every tick that ends the run once the run's context has
//     ended. When the context ends the engine also advances the epoch at
//     once, so a loop, a recursion, a start function or _initialize stops
//     within microseconds rather than at the next tick.
//   - WASI clock sleeps (poll_oneoff with only clock subscriptions) are
//     served by the engine, waiting on the timer or the context, because
//     wasmtime's own poll_oneoff sleeps its full time whatever the context
//     (wasi.go). Standard input is the run's bytes; standard output and
//     error reach the run's writers before fd_write returns, so a writer's
//     error (the output cap) refuses the write itself.
//   - wasmtime's store limiter caps every linear memory at the run's limit,
//     and initial sizes are checked before instantiation. A refused
//     memory.grow is invisible to an embedder, so each module is rewritten
//     at load (growhook.go) to record refused requests where the engine can
//     read them: MemoryLimitHit means a request passed the limit. The peak
//     is the memories' final size.
//   - On Linux the engine makes every linear memory itself (memory.go,
//     memory.c): the module's data split out at load into an image in a
//     sealed memory file, mapped copy-on-write into a range reserved as
//     wasmtime asks (reservation and guard region), only the memory's size
//     accessible; when the store is deleted the pages the run wrote are
//     restored and the range kept for the module's next instance.
//     Instances are then allocated on demand, and at most maxRuns runs are
//     in flight. Elsewhere instances come from wasmtime's pooling allocator
//     where the address space allows (wasmtime.go says what that costs and
//     bounds), and from on-demand allocation otherwise; a memory there
//     starts as a copy of the module's data segments, merged at load
//     (host/engine/internal/datamerge). A run's store is deleted after Run
//     returns, by the engine's closer goroutine (retire.go); its memory and
//     slot are held until then, and Close waits for every deletion.
//   - Closing a module or the engine waits for the runs in flight on it
//     (as long as Close's context allows) and frees nothing they use: the
//     module's compiled code and image, and the engine's closer, ticker,
//     linker and wasmtime engine, are released by whichever of Close or
//     the last run leaves them unused (host/engine/internal/inflight). A
//     Run that starts once its module or engine is closing returns
//     engine.ErrClosed without touching any of them.
//   - Traps, including stack overflow, come back as *engine.Trap with the
//     same messages the wazero engine gives, so results do not depend on the
//     engine.
//
// With engine.Config.CacheDir set, compiled modules are serialized to disk
// (cache.go): each entry is keyed by the module's SHA-256, the wasmtime
// version and the engine's settings (the grow-hook rewrite's version
// included), and is checked against its header and a checksum over the
// whole entry before use; a stale, foreign or corrupt entry is logged once,
// recompiled and replaced, never trusted, and a directory that cannot be
// used turns the cache off with one warning, never failing a compilation.
// Compile errors are wasmtime's message and causes on one line, without
// its native backtrace.
package wasmtime

// Name is the name this engine registers under.
const Name = "wasmtime"
