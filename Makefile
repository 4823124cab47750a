# The front door. Every target is what a developer runs and what CI
# (.ci/run) runs: `make check` and `make test` there, nothing else.
#
#   make build      bin/blockhost
#   make test       all tests, race detector on
#   make bench      host benchmarks; docs/benchmarks.md explains the figures
#   make check      format, vet, wasip1 build, stdlib-only abi/ and sdk/, tidy go.mod
#   make examples   every example as bin/examples/NAME.wasm
#   make demo       runs examples/hello through bin/blockhost
#   make clean      removes bin/

GO       ?= go
WAT2WASM ?= wat2wasm
BIN      := bin

# BENCHTIME is how long each latency benchmark runs. The interruption
# benchmarks in ONCE_BENCHES run a fixed batch of steps per iteration and
# are always run once (-benchtime=1x).
BENCHTIME  ?= 2s
BENCHFLAGS ?=
ONCE_BENCHES := ^Benchmark(Interrupt|EngineSleepTimeout)$$

# Tests build WebAssembly fixtures and compile them under the race
# detector; on two cores that takes minutes, not seconds.
TEST_TIMEOUT ?= 20m

MODULE := $(shell $(GO) list -m)

# Every directory under examples/ with a main.go is a Go block; every .wat
# file is a WebAssembly text block named after its file.
GO_EXAMPLES  := $(patsubst examples/%/main.go,%,$(wildcard examples/*/main.go))
WAT_EXAMPLES := $(wildcard examples/*/*.wat)
EXAMPLE_WASM := $(GO_EXAMPLES:%=$(BIN)/examples/%.wasm) \
                $(patsubst %.wat,$(BIN)/examples/%.wasm,$(notdir $(WAT_EXAMPLES)))

# Every directory under examples/ with a main.c is a C block, built with the
# header-only C SDK (sdk/c/blockhost.h) when clang can target wasm32-wasi
# (clang, lld and wasi-libc; .ci/run installs them). wasm-ld's default
# stack is 64 KiB; C_CFLAGS raise it to 1 MiB.
CLANG      ?= clang
C_CFLAGS   ?= --target=wasm32-wasi -O2 -Wall -Werror -Wl,-z,stack-size=1048576
C_EXAMPLES := $(patsubst examples/%/main.c,%,$(wildcard examples/*/main.c))
C_WASM     := $(C_EXAMPLES:%=$(BIN)/examples/%.wasm)

.DEFAULT_GOAL := help
.PHONY: help build test bench check examples c-examples demo clean FORCE

help:
	@sed -n 's/^#   //p' $(firstword $(MAKEFILE_LIST))

build:
	$(GO) build -o $(BIN)/blockhost ./cmd/blockhost

# internal/extismcompat is a module of its own (it depends on Extism; the
# product does not), so ./... does not reach it.
test:
	$(GO) test -race -count=1 -timeout=$(TEST_TIMEOUT) ./...
	cd internal/extismcompat && $(GO) test -race -count=1 -timeout=$(TEST_TIMEOUT) ./...

bench:
	$(GO) test -run='^$$' -bench=. -skip='$(ONCE_BENCHES)' -benchtime=$(BENCHTIME) $(BENCHFLAGS) ./host/
	$(GO) test -run='^$$' -bench='$(ONCE_BENCHES)' -benchtime=1x $(BENCHFLAGS) ./host/
	$(GO) test -run='^$$' -bench=. -benchtime=$(BENCHTIME) $(BENCHFLAGS) ./host/executor/
	$(GO) test -run='^$$' -bench='DataMerge|Memory' -benchtime=$(BENCHTIME) $(BENCHFLAGS) ./host/engine/wazero/
	cd internal/extismcompat && $(GO) test -run='^$$' -bench=. -benchtime=$(BENCHTIME) $(BENCHFLAGS) .
	$(GO) test -run='^$$' -bench=EndToEnd -benchtime=$(BENCHTIME) $(BENCHFLAGS) ./host/worker/
	$(GO) test -run='^$$' -bench=SelectByKey -benchtime=$(BENCHTIME) $(BENCHFLAGS) ./plugins/sqlquery/

# The Go files gofmt looks at: all of them, testdata included, outside
# hidden directories (.git, caches).
GO_FILES = $(shell find . -name '.?*' -prune -o -name '*.go' -print)

check:
	@echo '>>> gofmt -l'
	@files="$$(gofmt -l $(GO_FILES))"; \
	if [ -n "$$files" ]; then echo "not gofmt-formatted (run gofmt -w):"; echo "$$files"; exit 1; fi
	@echo '>>> go vet'
	$(GO) vet ./...
	cd internal/extismcompat && $(GO) vet ./...
	GOOS=wasip1 GOARCH=wasm $(GO) vet ./abi/... ./sdk/... ./examples/...
	@echo '>>> wasip1 build'
	GOOS=wasip1 GOARCH=wasm $(GO) build ./abi/... ./sdk/... ./examples/...
	@echo '>>> abi/ and sdk/ import only the standard library'
	@for goos in $$($(GO) env GOOS) wasip1; do \
		goarch=$$($(GO) env GOARCH); [ $$goos = wasip1 ] && goarch=wasm; \
		bad="$$(GOOS=$$goos GOARCH=$$goarch $(GO) list -deps -f '{{if not .Standard}}{{.ImportPath}}{{end}}' ./abi/... ./sdk/... \
			| grep -Ev '^$(MODULE)/(abi|sdk)(/|$$)')"; \
		if [ -n "$$bad" ]; then echo "abi/ or sdk/ depends on non-standard packages ($$goos):"; echo "$$bad"; exit 1; fi; \
	done
	@echo '>>> go mod tidy -diff'
	@$(GO) mod tidy -diff || { echo 'go.mod/go.sum are not tidy: run go mod tidy'; exit 1; }
	@cd internal/extismcompat && $(GO) mod tidy -diff || { echo 'internal/extismcompat/go.mod is not tidy: run go mod tidy there'; exit 1; }

examples: $(EXAMPLE_WASM) c-examples

c-examples:
	@if printf 'int main(void) { return 0; }\n' | $(CLANG) --target=wasm32-wasi -x c - -o /dev/null 2>/dev/null; then \
		$(MAKE) --no-print-directory $(C_WASM); \
	else \
		echo "skipping C examples ($(C_EXAMPLES)): $(CLANG) cannot target wasm32-wasi; install clang, lld and wasi-libc"; \
	fi

$(C_WASM): $(BIN)/examples/%.wasm: examples/%/main.c sdk/c/blockhost.h
	@mkdir -p $(@D)
	$(CLANG) $(C_CFLAGS) -o $@ $<

# Go's build cache decides whether anything changed, so go build always runs.
$(GO_EXAMPLES:%=$(BIN)/examples/%.wasm): $(BIN)/examples/%.wasm: FORCE
	GOOS=wasip1 GOARCH=wasm $(GO) build -o $@ ./examples/$*

vpath %.wat $(sort $(dir $(WAT_EXAMPLES)))
$(BIN)/examples/%.wasm: %.wat
	@mkdir -p $(@D)
	$(WAT2WASM) $< -o $@

demo: build $(BIN)/examples/hello.wasm
	$(BIN)/blockhost run --input '{"name":"ana"}' $(BIN)/examples/hello.wasm

clean:
	rm -rf $(BIN)
