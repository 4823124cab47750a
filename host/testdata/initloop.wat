;; ABI v1 reactor whose _initialize never returns.
(module
  (memory (export "memory") 1)
  (func (export "blockhost_abi_v1"))
  (func (export "_initialize") (loop $l (br $l)))
  (func (export "blockhost_run")))
