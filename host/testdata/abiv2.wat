;; A block built for ABI v2.
(module
  (import "blockhost" "check" (func (result i32)))
  (memory (export "memory") 1)
  (func (export "blockhost_abi_v2"))
  (func (export "_start")))
