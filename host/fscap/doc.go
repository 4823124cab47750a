// Package fscap is blockhost's filesystem capability: the host directories
// a step is granted, and the only code that touches them for a block —
// through the blockhost host calls, through WASI preopened directories, and
// for built-in blocks such as fs.blob_put.
//
// A step's grants are opened once, as a Session, when the step starts.
// Whichever way a block comes in, a Session guarantees that:
//
//   - Nothing outside a granted directory is read, written, created or
//     removed. Each host directory is opened once as an os.Root and every
//     name is resolved beneath that handle by the kernel, one element at a
//     time, so that no spelling leads out: ".." elements and absolute paths
//     are refused before they reach the file system, and symbolic links —
//     created before the step or swapped in during it, alone or in chains —
//     are followed only while they stay inside the directory. Names with
//     NUL or control characters, invalid UTF-8, elements over 255 bytes or
//     paths over 4096 bytes are refused. Devices and sockets are never
//     opened.
//   - A read-only grant changes nothing: every write, append, creation,
//     removal and rename under it fails with ErrPermission.
//   - Per grant and per step, the bytes written, the files and directories
//     created and the size of any file written stay within the grant's
//     Quota; a refused write leaves no partial file.
//   - A write never leaves a half-written file in place of the old one: it
//     goes to a temporary file in the same directory, which is synced and
//     renamed into place only when complete.
//   - Every operation ends by its grant's operation timeout and by the
//     step's deadline or cancellation. Large reads and writes go in chunks
//     of 1 MiB and stop between chunks. An operation the kernel holds —
//     a FIFO with no writer, a hung network mount — is abandoned: the
//     caller gets ErrTimeout (or ErrStepEnded) on time, and the operation
//     is counted by Abandoned until it returns and is cleaned up.
//   - Every error is an *Error of one class (ErrNotFound, ErrPermission,
//     …), permanent or retryable, with an ABI result and a step error code
//     (Classify), and matches the io/fs sentinel where one fits.
//   - Every operation is logged (debug), and every refusal, quota refusal
//     and abandoned operation too (warn), with the op, the grant, the path
//     and the bytes.
//
// What a Session cannot prevent: a host directory that contains hard links
// or bind mounts to files elsewhere exposes those files, as os.Root
// documents; a host directory whose path the operator gave through a
// symbolic link is the directory the link names when the step starts.
package fscap
