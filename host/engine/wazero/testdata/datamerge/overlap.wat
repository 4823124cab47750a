;; "aaaa" overwrites "bb", so the order segments are copied in matters;
;; "c" lies close enough to "bb" to be merged with it were it not for that.
(module
  (memory 1)
  (data (i32.const 2) "bb")
  (data (i32.const 0) "aaaa")
  (data (i32.const 5) "c"))
