;; An ABI v1 block with no entry point.
(module
  (memory (export "memory") 1)
  (func (export "blockhost_abi_v1")))
