// Package extismcompat holds blockhost's comparison with Extism: it runs
// the test plugins that ship with github.com/extism/go-sdk v1.7.1 through
// blockhost, on every engine, and through the go-sdk itself, with the same
// input, config and grants, and compares what they answer; and it
// benchmarks a step of blockhost against an Extism plugin call.
//
// It is a module of its own so that blockhost's module never depends on
// Extism. The plugins are read from the module cache, where `go mod
// download` puts the go-sdk; nothing of Extism is copied into this tree.
package extismcompat
