;; The start function sets a global that _start requires: it traps unless
;; the start function ran first.
(module
  (memory (export "memory") 1)
  (global $g (mut i32) (i32.const 0))
  (func $s (global.set $g (i32.const 1)))
  (start $s)
  (func (export "_start")
    (if (i32.eqz (global.get $g)) (then unreachable))))
