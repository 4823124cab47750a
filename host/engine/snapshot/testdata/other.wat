;; A module with _initialize and a memory, but exports other than
;; state.wat's: snapshot.Original must not describe it as state.wat's.
(module
  (memory (export "memory") 1)
  (func (export "_initialize"))
  (func (export "product") (result i64) (i64.const 1)))
