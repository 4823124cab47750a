;; trap is an ABI v1 block whose entry point executes `unreachable`: the
;; step ends as error execution_failed, with the trap in the message.
;; A Go block cannot show this: a Go panic exits with code 2 instead.
(module
  (memory (export "memory") 1)
  ;; The version marker: exported, never called.
  (func (export "blockhost_abi_v1"))
  (func (export "_start")
    unreachable))
