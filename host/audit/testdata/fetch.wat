;; A block that imports the HTTP host function and WASI environ_get, and
;; does nothing: audit reads its imports, never runs it.
(module
  (import "blockhost" "http_request" (func (param i32 i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "environ_get" (func (param i32 i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "blockhost_abi_v1"))
  (func (export "_start")))
