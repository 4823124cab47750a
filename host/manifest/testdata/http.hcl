block "fetch" {
  module = "fetch.wasm"
  capabilities {
    http {
      grant "api" {
        host    = "api.example.com"
        methods = ["GET", "POST"]
        paths   = ["/v1/", "/v2/status"]
      }
      grant "local-test" {
        scheme            = "http"
        host              = "127.0.0.1"
        port              = 8080
        allow_ranges      = ["127.0.0.0/8", "::1"]
        redirects         = 3
        connect_timeout   = "2s"
        tls_timeout       = "3s"
        header_timeout    = "4s"
        total_timeout     = "5s"
        max_request_body  = "1MiB"
        max_response_body = "2MiB"
        max_header_bytes  = "16KiB"
        max_concurrent    = 2
      }
    }
  }
}
