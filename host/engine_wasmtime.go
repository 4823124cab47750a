package host

// The wasmtime engine is known to every runtime, selected with
// RuntimeConfig.WithEngine("wasmtime") or a manifest's engine. In a binary
// built without cgo the name is still known, and NewRuntime says plainly
// that this build cannot run it.
import _ "github.com/blockhost/blockhost/host/engine/wasmtime"
