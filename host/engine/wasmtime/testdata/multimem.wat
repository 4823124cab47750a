;; WASI command with two memories: the exported one stays at 1 page, the
;; second grows by as many pages as standard input has bytes; it exits
;; with 1 if that is refused.
(module
  (import "wasi_snapshot_preview1" "fd_read" (func $fd_read (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (memory $a (export "memory") 1)
  (memory $b 1)
  (func (export "_start")
    (i32.store (i32.const 0) (i32.const 1024))
    (i32.store (i32.const 4) (i32.const 4096))
    (drop (call $fd_read (i32.const 0) (i32.const 0) (i32.const 1) (i32.const 16)))
    (if (i32.eq (memory.grow $b (i32.load (i32.const 16))) (i32.const -1))
      (then (call $exit (i32.const 1))))))
