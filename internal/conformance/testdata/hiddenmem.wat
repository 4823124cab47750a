;; WASI command whose memory is not exported; it grows it to 5 pages and
;; writes "ok" from a data segment, so the host's peak memory figure must
;; come from a memory no export names.
(module
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory 2)
  (data (i32.const 16) "ok")
  (func (export "_start")
    (drop (memory.grow (i32.const 3)))
    (i32.store (i32.const 0) (i32.const 16))
    (i32.store (i32.const 4) (i32.const 2))
    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))
