;; ABI v1 block whose initial memory is 64 MiB.
(module
  (memory (export "memory") 1024)
  (func (export "blockhost_abi_v1"))
  (func (export "_start")))
