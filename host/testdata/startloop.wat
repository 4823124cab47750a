;; ABI v1 block whose WebAssembly start function never returns.
(module
  (memory (export "memory") 1)
  (func (export "blockhost_abi_v1"))
  (func $spin (loop $l (br $l)))
  (start $spin)
  (func (export "_start")))
