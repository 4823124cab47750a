;; The tiny block of the end-to-end benchmark: writes {"ok":true} and
;; returns, so that a step costs what the host and the fleet add.
(module
  (import "blockhost" "output_write" (func $output_write (param i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 16) "{\"ok\":true}")
  (func (export "blockhost_abi_v1"))
  (func (export "_start")
    (drop (call $output_write (i32.const 16) (i32.const 11)))))
