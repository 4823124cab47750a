block "minimal" {
  module = "minimal.wasm"
}
