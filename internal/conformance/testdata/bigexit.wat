;; WASI command that exits with status 300: preview1 lets a guest exit with
;; any u32, so every engine must report exit code 300, not a failure.
(module
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (memory (export "memory") 1)
  (func (export "_start")
    (call $exit (i32.const 300))))
