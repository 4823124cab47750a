;; An offset read from a global is not known before instantiation.
(module
  (import "env" "base" (global $base i32))
  (memory 1)
  (data (i32.const 10) "ab")
  (data (global.get $base) "cd"))
