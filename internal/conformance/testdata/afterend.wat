;; ABI v1 block that spins calling check until the step is over, then calls
;; every core host function once more and tries to say on standard error
;; whether each returned the code check did and had no effect:
;;   "after-end: timeout ok", "after-end: cancelled ok" or
;;   "after-end: wrong result".
;; That WASI fd_write, entered after the end, must end the run instead: the
;; line never reaches the host.
;; Everything after the loop is straight-line code with no call to a guest
;; function, so an engine's interruption checks (at loop back-edges and
;; function entries) do not cut it short.
(module
  (import "blockhost" "check" (func $check (result i32)))
  (import "blockhost" "input_len" (func $input_len (param i32) (result i32)))
  (import "blockhost" "input_read" (func $input_read (param i32 i32 i32) (result i32)))
  (import "blockhost" "output_write" (func $output_write (param i32 i32) (result i32)))
  (import "blockhost" "error_set" (func $error_set (param i32 i32 i32 i32) (result i32)))
  (import "blockhost" "log" (func $log (param i32 i32 i32 i32 i32) (result i32)))
  (import "blockhost" "deadline" (func $deadline (param i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 100) "after-end: timeout ok\n")
  (data (i32.const 200) "after-end: cancelled ok\n")
  (data (i32.const 300) "after-end: wrong result\n")
  (data (i32.const 400) "x")
  (func (export "blockhost_abi_v1"))
  (func (export "_start")
    (local $code i32)
    (local $ok i32)
    (loop $spin
      (local.set $code (call $check))
      (br_if $spin (i32.eqz (local.get $code))))
    ;; Each call must return $code (timeout or cancelled).
    (local.set $ok (i32.or (i32.eq (local.get $code) (i32.const 6)) (i32.eq (local.get $code) (i32.const 7))))
    (local.set $ok (i32.and (local.get $ok) (i32.eq (call $input_len (i32.const 16)) (local.get $code))))
    (local.set $ok (i32.and (local.get $ok) (i32.eq (call $input_read (i32.const 32) (i32.const 8) (i32.const 20)) (local.get $code))))
    (local.set $ok (i32.and (local.get $ok) (i32.eq (call $output_write (i32.const 400) (i32.const 1)) (local.get $code))))
    (local.set $ok (i32.and (local.get $ok) (i32.eq (call $error_set (i32.const 2001) (i32.const 0) (i32.const 400) (i32.const 1)) (local.get $code))))
    (local.set $ok (i32.and (local.get $ok) (i32.eq (call $log (i32.const 3) (i32.const 400) (i32.const 1) (i32.const 0) (i32.const 0)) (local.get $code))))
    (local.set $ok (i32.and (local.get $ok) (i32.eq (call $deadline (i32.const 48)) (local.get $code))))
    (local.set $ok (i32.and (local.get $ok) (i32.eq (call $check) (local.get $code))))
    ;; ... and none may have written to memory.
    (local.set $ok (i32.and (local.get $ok) (i32.eqz (i32.load (i32.const 16)))))
    (local.set $ok (i32.and (local.get $ok) (i32.eqz (i32.load (i32.const 20)))))
    (local.set $ok (i32.and (local.get $ok) (i64.eqz (i64.load (i32.const 32)))))
    (local.set $ok (i32.and (local.get $ok) (i64.eqz (i64.load (i32.const 48)))))
    ;; The verdict: an iovec at 0 for fd_write on standard error.
    (if (i32.eqz (local.get $ok))
      (then
        (i32.store (i32.const 0) (i32.const 300))
        (i32.store (i32.const 4) (i32.const 24)))
      (else
        (if (i32.eq (local.get $code) (i32.const 6))
          (then
            (i32.store (i32.const 0) (i32.const 100))
            (i32.store (i32.const 4) (i32.const 22)))
          (else
            (i32.store (i32.const 0) (i32.const 200))
            (i32.store (i32.const 4) (i32.const 24))))))
    (drop (call $fd_write (i32.const 2) (i32.const 0) (i32.const 1) (i32.const 8)))))
