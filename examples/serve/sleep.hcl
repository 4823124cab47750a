# examples/sleep, built by `make examples` into bin/examples/sleep.wasm:
# a WASI command that sleeps 10 s, then prints "woke".
block "sleep" {
  module = "../../bin/examples/sleep.wasm"
  limits {
    timeout = "30s"
  }
}
