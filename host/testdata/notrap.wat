;; trap.wat's twin: the same shape (imports, exports, memory, one function
;; body of one instruction), but _start returns. The compile-cache tests copy
;; its cache entry over trap.wat's: a cache that ran it would report success.
(module
  (memory (export "memory") 1)
  (func (export "blockhost_abi_v1"))
  (func (export "_start") nop))
