;; The start function's export name is taken: the module is left alone.
(module
  (func $s)
  (start $s)
  (func (export "blockhost:start")))
