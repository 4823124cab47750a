;; ABI v1 block: copies its input to its output, logs one record, and
;; returns. Exercises input_len, input_read, output_write and log.
(module
  (import "blockhost" "input_len" (func $input_len (param i32) (result i32)))
  (import "blockhost" "input_read" (func $input_read (param i32 i32 i32) (result i32)))
  (import "blockhost" "output_write" (func $output_write (param i32 i32) (result i32)))
  (import "blockhost" "log" (func $log (param i32 i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 2)
  (data (i32.const 16) "echoing")
  (data (i32.const 32) "k\00v\00")
  (func (export "blockhost_abi_v1"))
  (func (export "_start")
    (local $n i32)
    (drop (call $log (i32.const 3) (i32.const 16) (i32.const 7) (i32.const 32) (i32.const 4)))
    (drop (call $input_len (i32.const 0)))
    (drop (call $input_read (i32.const 1024) (i32.load (i32.const 0)) (i32.const 4)))
    (drop (call $output_write (i32.const 1024) (i32.load (i32.const 4))))))
