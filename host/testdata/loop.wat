;; ABI v1 block that spins forever in pure computation.
(module
  (memory (export "memory") 1)
  (func (export "blockhost_abi_v1"))
  (func (export "_start")
    (loop $l (br $l))))
