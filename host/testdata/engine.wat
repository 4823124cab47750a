;; engine exercises an engine directly, below the host: each export is one
;; behaviour, and an engine test picks the ones it runs, in order, with
;; RunConfig.Entry. "test"."probe" is a host function the engine tests
;; provide; it writes 0xcafe at its argument and returns 7.
(module
  (import "wasi_snapshot_preview1" "fd_read" (func $fd_read (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "poll_oneoff" (func $poll (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (import "test" "probe" (func $probe (param i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "return"))
  (func (export "unreachable") unreachable)
  (func (export "oob") (drop (i32.load (i32.const 0x7ffffff0))))
  (func (export "divzero") (drop (i32.div_s (i32.const 1) (i32.const 0))))
  (func $down (param i32) (result i32) (call $down (i32.add (local.get 0) (i32.const 1))))
  (func (export "overflow") (drop (call $down (i32.const 0))))
  (func (export "spin") (loop $l (br $l)))
  ;; 1 page + 3 + 2: memory ends at 6 pages.
  (func (export "grow")
    (drop (memory.grow (i32.const 3)))
    (drop (memory.grow (i32.const 2))))
  ;; Grows a page at a time until refused, then returns normally.
  (func (export "bomb")
    (loop $l
      (br_if $l (i32.ne (memory.grow (i32.const 1)) (i32.const -1)))))
  (func (export "exit0") (call $exit (i32.const 0)))
  (func (export "exit42") (call $exit (i32.const 42)))
  ;; Sleeps 10 s: poll_oneoff on a relative monotonic clock.
  (func (export "sleep")
    (i32.store8 (i32.const 8) (i32.const 0))
    (i32.store (i32.const 16) (i32.const 1))
    (i64.store (i32.const 24) (i64.const 10000000000))
    (drop (call $poll (i32.const 0) (i32.const 64) (i32.const 1) (i32.const 128))))
  ;; Copies up to 4 KiB of stdin to stdout.
  (func (export "echo")
    (i32.store (i32.const 256) (i32.const 1024))
    (i32.store (i32.const 260) (i32.const 4096))
    (drop (call $fd_read (i32.const 0) (i32.const 256) (i32.const 1) (i32.const 272)))
    (i32.store (i32.const 260) (i32.load (i32.const 272)))
    (drop (call $fd_write (i32.const 1) (i32.const 256) (i32.const 1) (i32.const 276))))
  ;; Traps unless the probe returns 7 and wrote 0xcafe at 64.
  (func (export "probe")
    (if (i32.ne (call $probe (i32.const 64)) (i32.const 7)) (then unreachable))
    (if (i32.ne (i32.load (i32.const 64)) (i32.const 0xcafe)) (then unreachable))))
