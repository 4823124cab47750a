;; ABI v1 block importing a function the host does not have.
(module
  (import "blockhost" "nope" (func (param i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "blockhost_abi_v1"))
  (func (export "_start")))
