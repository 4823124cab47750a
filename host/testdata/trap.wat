;; ABI v1 block that executes unreachable.
(module
  (memory (export "memory") 1)
  (func (export "blockhost_abi_v1"))
  (func (export "_start") unreachable))
