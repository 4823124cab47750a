;; Two adjacent data segments, which merge, and a third far past them.
(module
  (memory 1)
  (data (i32.const 0) "a")
  (data (i32.const 1) "b")
  (data (i32.const 0xf0000000) "c"))
