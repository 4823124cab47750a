;; next() counts the calls in its own instance, through the table: an
;; entry filled in one instance must call that instance's $inc.
(module
  (type $v (func (result i32)))
  (type $fill (func (param i32)))
  (global $n (mut i32) (i32.const 0))
  (table 1 funcref)
  (elem (i32.const 0) $inc)
  (func $inc (type $v)
    (global.set $n (i32.add (global.get $n) (i32.const 1)))
    (global.get $n))
  (func (export "next") (result i32)
    (call_indirect (type $v) (i32.const 0))))
