;; WASI command that writes what a Go guest prints when it dies — two
;; lines saying why, then a goroutine dump — to stderr, then exits with
;; code 2, as the Go runtime does.
(module
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (memory (export "memory") 1)
  (data (i32.const 256) "runtime: out of memory: cannot allocate 1048576-byte block\nfatal error: out of memory\n\ngoroutine 1 gp=0x2021c0 m=0 [running]:\nruntime.throw({0x31eb8, 0xd})\n\t/usr/local/go/src/runtime/panic.go:1229 +0x3\nmain.main()\n\t/src/main.go:34 +0x2\n\ngoroutine 2 gp=0x202380 m=nil [force gc (idle)]:\nruntime.gopark(0x3a050)\n")
  (func (export "_start")
    (i32.store (i32.const 0) (i32.const 256))
    (i32.store (i32.const 4) (i32.const 310))
    (drop (call $fd_write (i32.const 2) (i32.const 0) (i32.const 1) (i32.const 16)))
    (call $exit (i32.const 2))))
