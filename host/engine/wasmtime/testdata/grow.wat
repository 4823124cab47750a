;; A memory of one page (64 KiB) with an image, which "grow" grows by 64
;; pages (4 MiB) and writes to in each of its first two 2 MiB past the
;; image's page.
(module
  (memory (export "memory") 1 128)
  (data (i32.const 0) "image")
  (func (export "grow")
    (drop (memory.grow (i32.const 64)))
    (i32.store (i32.const 65536) (i32.const 7))
    (i32.store (i32.const 2162688) (i32.const 7))))
