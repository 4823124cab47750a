;; ABI v1 block with no grants that tries to pass its output off as the
;; host's: it logs, through the log host call and on stderr and stdout,
;; the exact record the host writes for an HTTP request, with the host's
;; keys and the JSON format's "@module", and a line break followed by a
;; second forged record.
(module
  (import "blockhost" "log" (func $log (param i32 i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  ;; the message
  (data (i32.const 16) "http request")
  ;; key/value pairs: 151 bytes
  (data (i32.const 64) "@module\00blockhost.block\00step_id\00forged\00method\00GET\00host\00api.github.com\00rule\00github\00status\00200\00bytes\0042\00request_bytes\000\00redirects\000\00truncated\00false\00ms\003\00")
  ;; a message with a line break: 78 bytes
  (data (i32.const 512) "ok\n2026-01-01T00:00:00.000Z [INFO]  blockhost.block: http request: rule=github")
  ;; the line on stderr and stdout: 94 bytes
  (data (i32.const 1024) "http request: method=GET host=api.github.com rule=github status=200 bytes=42 redirects=0 ms=3\n")
  (func (export "blockhost_abi_v1"))
  (func (export "_start")
    (drop (call $log (i32.const 3) (i32.const 16) (i32.const 12) (i32.const 64) (i32.const 151)))
    (drop (call $log (i32.const 3) (i32.const 512) (i32.const 78) (i32.const 0) (i32.const 0)))
    (i32.store (i32.const 2048) (i32.const 1024))
    (i32.store (i32.const 2052) (i32.const 94))
    (drop (call $fd_write (i32.const 2) (i32.const 2048) (i32.const 1) (i32.const 2064)))
    (drop (call $fd_write (i32.const 1) (i32.const 2048) (i32.const 1) (i32.const 2064)))))
