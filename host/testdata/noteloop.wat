;; WASI command that writes "note" to stderr, then spins forever: a test
;; knows from the log line that the step is running.
(module
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 64) "note\n")
  (func (export "_start")
    (i32.store (i32.const 32) (i32.const 64))
    (i32.store (i32.const 36) (i32.const 5))
    (drop (call $fd_write (i32.const 2) (i32.const 32) (i32.const 1) (i32.const 48)))
    (loop $l (br $l))))
