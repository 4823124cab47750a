;; Sleeps 10 s with poll_oneoff, then writes "after" to standard output.
;; The code after the sleep is straight-line: no loop or call for an
;; engine's own interruption checks to stop it, only the host functions.
(module
  (import "wasi_snapshot_preview1" "poll_oneoff" (func $poll (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  ;; subscription at 0: userdata 0, tag 0 (clock), id 1 (monotonic),
  ;; timeout 10 s, precision 0, flags 0 (relative)
  (data (i32.const 16) "\01\00\00\00")
  (data (i32.const 24) "\00\e4\0b\54\02\00\00\00")
  ;; iovec at 200 -> "after" at 300
  (data (i32.const 200) "\2c\01\00\00\05\00\00\00")
  (data (i32.const 300) "after")
  (func (export "_start")
    (drop (call $poll (i32.const 0) (i32.const 100) (i32.const 1) (i32.const 180)))
    (drop (call $write (i32.const 1) (i32.const 200) (i32.const 1) (i32.const 190)))))
