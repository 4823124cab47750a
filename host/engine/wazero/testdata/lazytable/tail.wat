;; calls.wat with a tail call through the table, which needs wazero's
;; tail-call feature (the engine does not enable it; the rewrite handles
;; return_call_indirect all the same). Entries 0-1 and 5-7 are null, 2-4
;; hold $double, $inc and $seven; 8 and beyond are out of bounds.
(module
  (type $ii (func (param i32) (result i32)))
  (type $v (func (result i32)))
  (table 8 funcref)
  (elem (i32.const 2) $double $inc $seven)
  (func $double (type $ii) (i32.mul (local.get 0) (i32.const 2)))
  (func $inc (type $ii) (i32.add (local.get 0) (i32.const 1)))
  (func $seven (type $v) (i32.const 7))
  ;; call(i, x) = table[i](x), as [i32] -> [i32]
  (func (export "call") (param i32 i32) (result i32)
    (call_indirect (type $ii) (local.get 1) (local.get 0)))
  ;; callxi(x, i) = table[i](x) + x, the index in the second parameter,
  ;; x read again after the call
  (func (export "callxi") (param i32 i32) (result i32)
    (i32.add
      (call_indirect (type $ii) (local.get 0) (local.get 1))
      (local.get 0)))
  ;; call0(i) = table[i](), as [] -> [i32]
  (func (export "call0") (param i32) (result i32)
    (call_indirect (type $v) (local.get 0)))
  ;; tail(i, x) = table[i](x), as a tail call
  (func (export "tail") (param i32 i32) (result i32)
    (return_call_indirect (type $ii) (local.get 1) (local.get 0)))
)
