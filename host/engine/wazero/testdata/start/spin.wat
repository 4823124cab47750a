;; A start function that says it started, then never returns.
(module
  (import "test" "started" (func $started))
  (func $s (call $started) (loop $l (br $l)))
  (start $s)
  (func (export "_start")))
