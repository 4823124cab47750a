;; An Extism plugin written against extism:host/env directly, one export
;; per behaviour host/extism_test.go checks.
(module
  (import "extism:host/env" "alloc" (func $alloc (param i64) (result i64)))
  (import "extism:host/env" "free" (func $free (param i64)))
  (import "extism:host/env" "length" (func $length (param i64) (result i64)))
  (import "extism:host/env" "load_u8" (func $load_u8 (param i64) (result i32)))
  (import "extism:host/env" "load_u64" (func $load_u64 (param i64) (result i64)))
  (import "extism:host/env" "store_u8" (func $store_u8 (param i64 i32)))
  (import "extism:host/env" "input_length" (func $input_length (result i64)))
  (import "extism:host/env" "input_offset" (func $input_offset (result i64)))
  (import "extism:host/env" "input_load_u8" (func $input_load_u8 (param i64) (result i32)))
  (import "extism:host/env" "output_set" (func $output_set (param i64 i64)))
  (import "extism:host/env" "error_set" (func $error_set (param i64)))
  (import "extism:host/env" "config_get" (func $config_get (param i64) (result i64)))
  (import "extism:host/env" "var_get" (func $var_get (param i64) (result i64)))
  (import "extism:host/env" "var_set" (func $var_set (param i64 i64)))
  (import "extism:host/env" "http_request" (func $http_request (param i64 i64) (result i64)))
  (import "extism:host/env" "http_status_code" (func $http_status_code (result i32)))
  (import "extism:host/env" "log_info" (func $log_info (param i64)))
  (import "extism:host/env" "get_log_level" (func $get_log_level (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 0) "greeting")          ;; 0..8
  (data (i32.const 16) "it went wrong")    ;; 16..29
  (data (i32.const 32) "k")                ;; 32..33
  (data (i32.const 40) "value of k")       ;; 40..50
  (data (i32.const 64) "hello from a plugin") ;; 64..83

  ;; $block copies len bytes of linear memory at ptr into a new block.
  (func $block (param $ptr i32) (param $len i32) (result i64)
    (local $off i64) (local $i i32)
    (local.set $off (call $alloc (i64.extend_i32_u (local.get $len))))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $i) (local.get $len)))
        (call $store_u8
          (i64.add (local.get $off) (i64.extend_i32_u (local.get $i)))
          (i32.load8_u (i32.add (local.get $ptr) (local.get $i))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $next)))
    (local.get $off))

  ;; echo copies the input byte by byte into a block and outputs it.
  (func (export "echo") (result i32)
    (local $n i64) (local $off i64) (local $i i64)
    (local.set $n (call $input_length))
    (local.set $off (call $alloc (local.get $n)))
    (block $done
      (loop $next
        (br_if $done (i64.ge_u (local.get $i) (local.get $n)))
        (call $store_u8 (i64.add (local.get $off) (local.get $i))
          (call $input_load_u8 (local.get $i)))
        (local.set $i (i64.add (local.get $i) (i64.const 1)))
        (br $next)))
    (call $output_set (local.get $off) (local.get $n))
    (i32.const 0))

  ;; echo_offset outputs the input's own block.
  (func (export "echo_offset") (result i32)
    (call $output_set (call $input_offset) (call $input_length))
    (i32.const 0))

  ;; greeting outputs config "greeting", or nothing when it is unset.
  (func (export "greeting") (result i32)
    (local $v i64)
    (local.set $v (call $config_get (call $block (i32.const 0) (i32.const 8))))
    (if (i64.ne (local.get $v) (i64.const 0))
      (then (call $output_set (local.get $v) (call $length (local.get $v)))))
    (i32.const 0))

  ;; fail sets an error message and returns 1.
  (func (export "fail") (result i32)
    (call $error_set (call $block (i32.const 16) (i32.const 13)))
    (i32.const 1))

  ;; fail_rc0 sets an error message and returns 0: still an error.
  (func (export "fail_rc0") (result i32)
    (call $error_set (call $block (i32.const 16) (i32.const 13)))
    (i32.const 0))

  ;; rc7 returns 7 with no message.
  (func (export "rc7") (result i32) (i32.const 7))

  ;; no_result returns nothing and outputs a greeting.
  (func (export "no_result")
    (call $output_set (call $block (i32.const 64) (i32.const 19)) (i64.const 19)))

  ;; bad_load reads far outside every block.
  (func (export "bad_load") (result i32)
    (drop (call $load_u64 (i64.const 0x7fffffff)))
    (i32.const 0))

  ;; unreachable traps.
  (func (export "unreachable") (result i32) unreachable)

  ;; huge asks for a block of 1 TiB.
  (func (export "huge") (result i32)
    (drop (call $alloc (i64.const 0x10000000000)))
    (i32.const 0))

  ;; vars sets k, reads it back and outputs it.
  (func (export "vars") (result i32)
    (local $v i64)
    (call $var_set (call $block (i32.const 32) (i32.const 1)) (call $block (i32.const 40) (i32.const 10)))
    (local.set $v (call $var_get (call $block (i32.const 32) (i32.const 1))))
    (call $output_set (local.get $v) (call $length (local.get $v)))
    (i32.const 0))

  ;; var_unset outputs var k, which no step can have left behind.
  (func (export "var_unset") (result i32)
    (local $v i64)
    (local.set $v (call $var_get (call $block (i32.const 32) (i32.const 1))))
    (if (i64.ne (local.get $v) (i64.const 0))
      (then (call $output_set (local.get $v) (call $length (local.get $v)))))
    (i32.const 0))

  ;; http sends the input as the request (JSON {"url": …}) and outputs
  ;; the status code's low byte then the body.
  (func (export "http") (result i32)
    (local $body i64)
    (local.set $body (call $http_request (call $input_offset) (i64.const 0)))
    (if (i32.ne (call $http_status_code) (i32.const 200))
      (then (return (call $http_status_code))))
    (call $output_set (local.get $body) (call $length (local.get $body)))
    (i32.const 0))

  ;; log logs a message at info when the host wants info, and outputs it
  ;; when the host does not.
  (func (export "log") (result i32)
    (if (i32.le_s (call $get_log_level) (i32.const 2))
      (then (call $log_info (call $block (i32.const 64) (i32.const 19))))
      (else (call $output_set (call $block (i32.const 64) (i32.const 19)) (i64.const 19))))
    (i32.const 0))

  ;; spin never returns.
  (func (export "spin") (result i32)
    (loop $forever (br $forever))
    (i32.const 0))

  ;; takes_param cannot be a plugin function.
  (func (export "takes_param") (param i32) (result i32) (i32.const 0))
)
