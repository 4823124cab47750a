;; WASI command that grows its memory to 64 MiB and fills it twice with
;; memory.fill, then returns: straight-line code with no call and no loop,
;; so neither engine has a point at which to interrupt it, and a deadline
;; that passes meanwhile is noticed only after it returns.
(module
  (memory (export "memory") 1)
  (func (export "_start")
    (drop (memory.grow (i32.const 1023)))
    (memory.fill (i32.const 0) (i32.const 1) (i32.const 67108864))
    (memory.fill (i32.const 0) (i32.const 2) (i32.const 67108864))))
