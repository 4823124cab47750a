// Package extism runs Extism plugins under blockhost's sandbox: it
// implements Extism's host ABI, the import module "extism:host/env", as
// engine-neutral host functions (engine.HostModule), so that a plugin built
// with any Extism PDK runs unmodified on every blockhost engine.
//
// Extism's own runtime keeps a plugin's memory blocks (its input, output,
// error message, config and var values, HTTP bodies) in a separate
// "kernel" WebAssembly module. This package keeps them in Go instead: a
// Call owns a byte arena addressed by offsets, as the kernel's memory is,
// so the plugin sees the same offsets, lengths and bytes.
//
// Guarantees:
//   - A Call belongs to one step: its blocks, vars, output and error start
//     empty and are dropped with it. Nothing survives from one step to the
//     next (Extism keeps vars for the life of a plugin instance; blockhost
//     runs every step in a fresh instance).
//   - Memory blocks never grow past CallConfig.MaxBlockBytes; a plugin that
//     asks for more is stopped with quota_exceeded.
//   - HTTP goes only through CallConfig.HTTP, the step's httpcap.Session:
//     grants, dial-time address checks, timeouts and caps are the HTTP
//     capability's. Without a session every request is denied with
//     permission_denied.
//   - A guest that misuses the ABI (an offset outside every block, a
//     malformed request) is stopped with a trap; it never reaches memory
//     outside its own blocks.
//   - Once the step's context has ended, every host call stops the guest.
package extism
