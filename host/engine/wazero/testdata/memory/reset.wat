;; A memory of 4 pages whose data segments fill parts of the first two
;; (the image), one overwriting another; the other two start as zeros.
;; "dirty" grows the memory by 2 pages and writes 0xab over all of it.
(module
  (memory (export "memory") 4 64)
  (data (i32.const 0) "image, page 0")
  (data (i32.const 3) "OVER")
  (data (i32.const 70000) "image, page 1")
  (func (export "dirty") (result i32)
    (drop (memory.grow (i32.const 2)))
    (memory.fill (i32.const 0) (i32.const 0xab) (i32.mul (memory.size) (i32.const 65536)))
    (memory.size))
  (func (export "size") (result i32) (memory.size)))
