# A block that reads its input files and writes its results: a read-only
# directory and a read-write one with its own quota.
block "resize" {
  module = "resize.wasm"

  capabilities {
    filesystem {
      dir "in" {
        host = "./photos"
      }
      dir "out" {
        host    = "/srv/thumbnails"
        guest   = "/thumbs"
        mode    = "rw"
        timeout = "2s"
        quota {
          write_bytes = "16MiB"
          files       = 100
          file_size   = "4MiB"
        }
      }
    }
  }
}
