;; Nothing to do.
(module
  (func (export "_start")))
