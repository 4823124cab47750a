;; A memory of 64 pages (4 MiB) whose data segment fills part of the first
;; (a 64 KiB image); "write" writes to the image's third 4 KiB page,
;; "read" reads its first.
(module
  (memory (export "memory") 64 128)
  (data (i32.const 0) "image")
  (func (export "write") (i32.store (i32.const 8192) (i32.const 7)))
  (func (export "read") (drop (i32.load (i32.const 0)))))
