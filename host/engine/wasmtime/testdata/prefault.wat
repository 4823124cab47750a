;; A memory of 64 pages (4 MiB) whose data segment fills part of the first
;; (a 64 KiB image); "grow" grows it by 64 pages and touches none of it.
(module
  (memory (export "memory") 64 128)
  (data (i32.const 0) "image")
  (func (export "grow") (drop (memory.grow (i32.const 64)))))
