;; A passive segment is copied only by memory.init.
(module
  (memory 1)
  (data (i32.const 0) "ab")
  (data (i32.const 4) "cd")
  (data "passive"))
