;; WASI command importing from a module the host does not provide.
(module
  (import "env" "abort" (func))
  (memory (export "memory") 1)
  (func (export "_start")))
