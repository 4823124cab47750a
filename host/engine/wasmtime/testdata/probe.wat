;; Calls the engine tests' host function "test"."probe" with 64 and traps
;; unless it returns 7 and wrote 0xcafe at 64.
(module
  (import "test" "probe" (func $probe (param i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "probe")
    (if (i32.ne (call $probe (i32.const 64)) (i32.const 7)) (then unreachable))
    (if (i32.ne (i32.load (i32.const 64)) (i32.const 0xcafe)) (then unreachable))))
