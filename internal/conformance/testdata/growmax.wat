;; ABI v1 block whose memory declares a maximum of 2 pages; it asks for 4
;; more, is refused by its own maximum (not by the host's memory limit),
;; and traps.
(module
  (memory (export "memory") 1 2)
  (func (export "blockhost_abi_v1"))
  (func (export "_start")
    (if (i32.eq (memory.grow (i32.const 4)) (i32.const -1))
      (then unreachable))))
