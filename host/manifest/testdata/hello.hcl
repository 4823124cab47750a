block "hello" {
  module = "hello.wasm"
  engine = "wazero"
  args   = ["--verbose"]
  limits {
    timeout = "5s"
    memory  = "64MiB"
    output  = "1MiB"
    log     = "64KiB"
  }
  capabilities {
    env = { GREETING = "hi" }
    http {}
    filesystem {}
  }
}
