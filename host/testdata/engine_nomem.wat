;; engine_nomem has no linear memory and calls the engine tests' host
;; function, which must then be given no memory.
(module
  (import "test" "probe" (func $probe (param i32) (result i32)))
  (func (export "probe") (drop (call $probe (i32.const 64)))))
