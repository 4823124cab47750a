;; A segment of memory 1; the rewrite handles memory 0 only.
(module
  (memory 1)
  (memory $m1 1)
  (data (i32.const 0) "ab")
  (data (memory $m1) (i32.const 4) "cd"))
