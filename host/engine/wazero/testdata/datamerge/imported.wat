;; Memory 0 is imported: not known to be zero, nor private. The module's
;; own memory is memory 1.
(module
  (import "env" "mem" (memory 1))
  (memory 1)
  (data (i32.const 0) "ab")
  (data (i32.const 4) "cd"))
