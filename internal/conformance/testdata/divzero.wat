;; ABI v1 block that divides by zero.
(module
  (memory (export "memory") 1)
  (func (export "blockhost_abi_v1"))
  (func (export "_start") (drop (i32.div_s (i32.const 1) (i32.const 0)))))
