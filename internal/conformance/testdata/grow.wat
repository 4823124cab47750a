;; ABI v1 block that grows its memory, from 1 page, to as many 64 KiB pages
;; as its input has bytes, traps if that is refused, and outputs "grown".
(module
  (import "blockhost" "input_len" (func $input_len (param i32) (result i32)))
  (import "blockhost" "output_write" (func $output_write (param i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 16) "grown")
  (func (export "blockhost_abi_v1"))
  (func (export "_start")
    (drop (call $input_len (i32.const 0)))
    (if (i32.eq (memory.grow (i32.sub (i32.load (i32.const 0)) (memory.size))) (i32.const -1))
      (then unreachable))
    (drop (call $output_write (i32.const 16) (i32.const 5)))))
