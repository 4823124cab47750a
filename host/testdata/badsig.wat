;; ABI v1 block importing a host function with the wrong type.
(module
  (import "blockhost" "check" (func (param i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "blockhost_abi_v1"))
  (func (export "_start")))
