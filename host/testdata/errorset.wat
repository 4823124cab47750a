;; ABI v1 block that reports resource_unavailable (2002), retryable.
(module
  (import "blockhost" "error_set" (func $error_set (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 0) "backend is down")
  (func (export "blockhost_abi_v1"))
  (func (export "_start")
    (drop (call $error_set (i32.const 2002) (i32.const 1) (i32.const 0) (i32.const 15)))))
