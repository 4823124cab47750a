;; A module that imports blockhost functions but declares no ABI version.
(module
  (import "blockhost" "check" (func (result i32)))
  (memory (export "memory") 1)
  (func (export "_start")))
