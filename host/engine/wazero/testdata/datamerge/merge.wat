;; Segments out of order, some a few bytes apart, one far away: the close
;; ones merge, the far one stays apart.
(module
  (memory 1)
  (data (i32.const 10) "cd")
  (data (i32.const 0) "ab")
  (data (i32.const 4000) "far")
  (data (i32.const 12) "ef")
  (data (i32.const 20) "")
  (data (i32.const 65533) "end"))
