# The example catalog of `blockhost serve` (docs/serve.md). Relative paths
# are resolved against this file's directory. Build the modules first:
#   make build examples
#
# human.approval is always served; it needs no entry here.

block "hello" {
  manifest   = "hello.hcl"
  idempotent = true        # a step may run again after a crash if its request says may_rerun
}

block "sleep" {
  manifest = "sleep.hcl"   # sleeps 10 s: something to cancel
}

pool "default" {
  concurrency  = 4
  queue_size   = 64
  tenant_limit = 32
}

# Tenants and their bearer tokens. With --insecure-local, requests without
# a token act as tenant "local", identity "local"; tokens still work.
tenant "acme" {
  token "ana@acme.example" {
    # sha256 of the token "ana-demo-token-0001" (printf %s TOKEN | sha256sum).
    # Keep only hashes in the file; `env = "VAR"` reads a token from the environment.
    sha256 = "97f2b0d4c14468e5dbbddbee1d272e320b75bffee99d7a54e65b8469018b4273"
  }
}
