;; A block that imports nothing: no grant is of use to it.
(module
  (memory (export "memory") 1)
  (func (export "_start")))
