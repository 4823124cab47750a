;; startloop is an ABI v1 block whose WebAssembly start function loops
;; forever. The start function runs while the module is instantiated,
;; before _start, and the host bounds it by the same step deadline: the
;; step ends as timeout.
(module
  (memory (export "memory") 1)
  (func (export "blockhost_abi_v1"))
  (func $spin
    (loop $forever
      (br $forever)))
  (start $spin)
  (func (export "_start")))
