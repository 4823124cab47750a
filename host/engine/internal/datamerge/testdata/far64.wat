;; The same in a 64-bit memory, the third segment 2^62 bytes past them.
(module
  (memory i64 1)
  (data (i64.const 0) "a")
  (data (i64.const 1) "b")
  (data (i64.const 0x4000000000000000) "c"))
