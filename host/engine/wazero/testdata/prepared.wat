;; prepared.wat: a module with a memory image, a start function and a loop,
;; for the cache of prepared modules. "check" returns 0 when the start
;; function ran and the data segment is in memory, else a code saying
;; what is missing; "spin" loops for ever.
(module
  (memory (export "memory") 2)
  (global $started (mut i32) (i32.const 0))
  (data (i32.const 1024) "prepared")
  (func $s (global.set $started (i32.const 1)))
  (start $s)
  (func (export "check") (result i32)
    (if (i32.eqz (global.get $started)) (then (return (i32.const 1))))
    ;; "prep", little-endian
    (if (i32.ne (i32.load (i32.const 1024)) (i32.const 0x70657270)) (then (return (i32.const 2))))
    (i32.const 0))
  (func (export "spin") (loop $l (br $l))))
