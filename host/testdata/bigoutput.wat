;; ABI v1 block that writes 64 KiB of output 32 times (2 MiB in all),
;; ignoring the result, and returns normally.
(module
  (import "blockhost" "output_write" (func $output_write (param i32 i32) (result i32)))
  (memory (export "memory") 2)
  (func (export "blockhost_abi_v1"))
  (func (export "_start")
    (local $i i32)
    (loop $l
      (drop (call $output_write (i32.const 0) (i32.const 65536)))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $l (i32.lt_u (local.get $i) (i32.const 32))))))
