;; residue.wat: what an instance leaves behind in its memory slot.
;; "write" grows memory 0 from 48 to 64 pages and stores a secret at the
;; start of every 4 KiB of it, over the data segment too. "read" returns 0
;; when its memory is as a fresh instance's must be: 48 pages, the data
;; segment intact, every other word it looks at zero; otherwise a non-zero
;; code saying what it found. "past" loads the first word past 48 pages,
;; which must trap however far an earlier instance grew.
(module
  (memory (export "memory") 48)
  (data (i32.const 1024) "blockhost")
  (func (export "write")
    (local $p i32)
    (drop (memory.grow (i32.const 16)))
    (loop $each
      (i32.store (local.get $p) (i32.const 0x5ec2e7))
      (local.set $p (i32.add (local.get $p) (i32.const 4096)))
      (br_if $each (i32.lt_u (local.get $p) (i32.const 0x400000))))
    (i32.store (i32.const 1024) (i32.const 0x5ec2e7)))
  (func (export "read") (result i32)
    (local $p i32)
    (local $seen i32)
    (if (i32.ne (memory.size) (i32.const 48)) (then (return (i32.const 1))))
    ;; "bloc", little-endian
    (if (i32.ne (i32.load (i32.const 1024)) (i32.const 0x636f6c62)) (then (return (i32.const 2))))
    (loop $each
      (local.set $seen (i32.or (local.get $seen) (i32.load (local.get $p))))
      (local.set $p (i32.add (local.get $p) (i32.const 4096)))
      (br_if $each (i32.lt_u (local.get $p) (i32.const 0x300000))))
    (if (local.get $seen) (then (return (i32.const 3))))
    (i32.const 0))
  (func (export "past") (result i32)
    (i32.load (i32.const 0x300000))))
