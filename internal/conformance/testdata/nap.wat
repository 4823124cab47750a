;; WASI command that sleeps with one poll_oneoff clock subscription and then
;; writes "woke". The first byte of standard input picks the subscription:
;;   r  20 ms on the monotonic clock, relative     R  the same, 10 s
;;   a  20 ms on the monotonic clock, absolute     A  the same, 10 s
;;   w  20 ms on the realtime clock, absolute      W  the same, 10 s
;; Both engines refuse absolute times (as wazero's WASI does): poll_oneoff
;; then returns ENOTSUP and the program writes "notsup" instead. It exits
;; with 9 unless poll_oneoff reports exactly its one event.
(module
  (import "wasi_snapshot_preview1" "fd_read" (func $fd_read (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "poll_oneoff" (func $poll (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "clock_time_get" (func $clock (param i32 i64 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (memory (export "memory") 1)
  (data (i32.const 512) "woke")
  (data (i32.const 520) "notsup")
  (func (export "_start")
    (local $mode i32)
    (local $ns i64)
    (local $clock i32)
    (local $flags i32)
    ;; One byte of standard input at 600, through an iovec at 256.
    (i32.store (i32.const 256) (i32.const 600))
    (i32.store (i32.const 260) (i32.const 1))
    (drop (call $fd_read (i32.const 0) (i32.const 256) (i32.const 1) (i32.const 264)))
    (local.set $mode (i32.load8_u (i32.const 600)))
    (local.set $ns (i64.const 20000000))
    ;; Upper case: 10 s.
    (if (i32.lt_u (local.get $mode) (i32.const 0x60))
      (then
        (local.set $ns (i64.const 10000000000))
        (local.set $mode (i32.add (local.get $mode) (i32.const 0x20)))))
    (local.set $clock (i32.const 1))
    (if (i32.eq (local.get $mode) (i32.const 0x77)) ;; w
      (then (local.set $clock (i32.const 0))))
    (if (i32.ne (local.get $mode) (i32.const 0x72)) ;; not r: absolute
      (then
        (local.set $flags (i32.const 1))
        (drop (call $clock (local.get $clock) (i64.const 1) (i32.const 704)))
        (local.set $ns (i64.add (local.get $ns) (i64.load (i32.const 704))))))
    ;; The subscription at 0: userdata, tag clock, clock id, timeout,
    ;; precision, flags.
    (i64.store (i32.const 0) (i64.const 0x1234))
    (i32.store8 (i32.const 8) (i32.const 0))
    (i32.store (i32.const 16) (local.get $clock))
    (i64.store (i32.const 24) (local.get $ns))
    (i64.store (i32.const 32) (i64.const 0))
    (i32.store16 (i32.const 40) (local.get $flags))
    ;; The event goes to 64, the count to 128.
    (local.set $clock (call $poll (i32.const 0) (i32.const 64) (i32.const 1) (i32.const 128)))
    (if (i32.eq (local.get $clock) (i32.const 58)) ;; ENOTSUP
      (then
        (i32.store (i32.const 256) (i32.const 520))
        (i32.store (i32.const 260) (i32.const 6))
        (drop (call $fd_write (i32.const 1) (i32.const 256) (i32.const 1) (i32.const 264)))
        (return)))
    (if (i32.ne (local.get $clock) (i32.const 0))
      (then (call $exit (i32.const 9))))
    (if (i32.ne (i32.load (i32.const 128)) (i32.const 1))
      (then (call $exit (i32.const 9))))
    (if (i64.ne (i64.load (i32.const 64)) (i64.const 0x1234))
      (then (call $exit (i32.const 9))))
    (if (i32.ne (i32.load16_u (i32.const 72)) (i32.const 0))
      (then (call $exit (i32.const 9))))
    (if (i32.ne (i32.load8_u (i32.const 74)) (i32.const 0))
      (then (call $exit (i32.const 9))))
    (i32.store (i32.const 256) (i32.const 512))
    (i32.store (i32.const 260) (i32.const 4))
    (drop (call $fd_write (i32.const 1) (i32.const 256) (i32.const 1) (i32.const 264)))))
