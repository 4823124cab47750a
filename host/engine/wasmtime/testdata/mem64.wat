;; WASI command with a 64-bit memory that grows by as many pages as its
;; standard input has bytes, exiting with 1 if refused.
(module
  (import "wasi_snapshot_preview1" "fd_read" (func $fd_read (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (memory $m (export "memory") i64 1)
  (func (export "_start")
    (i64.store (i64.const 0) (i64.const 0))
    (i32.store (i64.const 0) (i32.const 1024))
    (i32.store (i64.const 4) (i32.const 4096))
    (drop (call $fd_read (i32.const 0) (i32.const 0) (i32.const 1) (i32.const 16)))
    (if (i64.eq (memory.grow (i64.extend_i32_u (i32.load (i64.const 16)))) (i64.const -1))
      (then (call $exit (i32.const 1))))))
