;; ABI v1 block that loads from beyond the end of its memory.
(module
  (memory (export "memory") 1)
  (func (export "blockhost_abi_v1"))
  (func (export "_start") (drop (i32.load (i32.const 0x7ffffff0)))))
