;; data.drop names an active segment by its index.
(module
  (memory 1)
  (data (i32.const 0) "ab")
  (data (i32.const 4) "cd")
  (func (export "f") (data.drop 1)))
