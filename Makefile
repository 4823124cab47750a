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
# benchmark runs a fixed number of steps per iteration and is always run
# once (-benchtime=1x).
BENCHTIME  ?= 2s
BENCHFLAGS ?=

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

.DEFAULT_GOAL := help
.PHONY: help build test bench check examples demo clean FORCE

help:
	@sed -n 's/^#   //p' $(firstword $(MAKEFILE_LIST))

build:
	$(GO) build -o $(BIN)/blockhost ./cmd/blockhost

test:
	$(GO) test -race -count=1 -timeout=$(TEST_TIMEOUT) ./...

bench:
	$(GO) test -run='^$$' -bench=. -skip='^BenchmarkInterrupt$$' -benchtime=$(BENCHTIME) $(BENCHFLAGS) ./host/
	$(GO) test -run='^$$' -bench='^BenchmarkInterrupt$$' -benchtime=1x $(BENCHFLAGS) ./host/
	$(GO) test -run='^$$' -bench=. -benchtime=$(BENCHTIME) $(BENCHFLAGS) ./host/executor/
	$(GO) test -run='^$$' -bench=EndToEnd -benchtime=$(BENCHTIME) $(BENCHFLAGS) ./host/worker/

# The Go files gofmt looks at: all of them, testdata included, outside
# hidden directories (.git, caches).
GO_FILES = $(shell find . -name '.?*' -prune -o -name '*.go' -print)

check:
	@echo '>>> gofmt -l'
	@files="$$(gofmt -l $(GO_FILES))"; \
	if [ -n "$$files" ]; then echo "not gofmt-formatted (run gofmt -w):"; echo "$$files"; exit 1; fi
	@echo '>>> go vet'
	$(GO) vet ./...
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

examples: $(EXAMPLE_WASM)

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
