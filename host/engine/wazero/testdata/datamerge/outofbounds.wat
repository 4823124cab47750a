;; The last segment runs past the end of memory: instantiation must fail
;; merged or not.
(module
  (memory 1)
  (data (i32.const 0) "ab")
  (data (i32.const 65534) "abcd"))
