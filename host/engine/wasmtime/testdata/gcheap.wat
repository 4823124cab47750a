;; gcheap.wat: a module with an externref table, for which wasmtime makes
;; its GC heap's memory before memory 0; "read" returns the first byte of
;; the data segment, 98 ('b'), when memory 0 got the module's image.
(module
  (table 1 externref)
  (memory (export "memory") 1)
  (data (i32.const 1024) "blockhost")
  (func (export "read") (result i32)
    (i32.load8_u (i32.const 1024))))
