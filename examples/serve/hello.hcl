# examples/hello, built by `make examples` into bin/examples/hello.wasm.
block "hello" {
  module = "../../bin/examples/hello.wasm"
  limits {
    timeout = "5s"
  }
}
