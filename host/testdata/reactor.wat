;; ABI v1 reactor: _initialize stores a value that blockhost_run outputs,
;; proving both ran in order.
(module
  (import "blockhost" "output_write" (func $output_write (param i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 0) "uninitialized")
  (data (i32.const 32) "initialized")
  (func (export "blockhost_abi_v1"))
  (func (export "_initialize") (memory.copy (i32.const 0) (i32.const 32) (i32.const 13)))
  (func (export "blockhost_run") (drop (call $output_write (i32.const 0) (i32.const 11)))))
