;; An offset computed by an extended constant expression: left alone.
(module
  (memory 1)
  (data (i32.const 10) "ab")
  (data (i32.add (i32.const 2) (i32.const 2)) "cd"))
