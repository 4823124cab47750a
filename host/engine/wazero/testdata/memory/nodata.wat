;; reset.wat without data: a memory with no image.
(module
  (memory (export "memory") 4 64)
  (func (export "dirty") (result i32)
    (drop (memory.grow (i32.const 2)))
    (memory.fill (i32.const 0) (i32.const 0xab) (i32.mul (memory.size) (i32.const 65536)))
    (memory.size))
  (func (export "size") (result i32) (memory.size)))
