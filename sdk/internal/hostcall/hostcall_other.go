//go:build !wasip1

package hostcall

import (
	"sync/atomic"

	"github.com/blockhost/blockhost/abi"
)

// Host is what a native build's host calls reach: one method per host
// function, with the semantics of docs/abi.md §4. Slices and strings passed
// in belong to the caller and must not be retained.
type Host interface {
	InputLen() (uint32, abi.Result)
	InputRead(buf []byte) (uint32, abi.Result)
	OutputWrite(p []byte) abi.Result
	ErrorSet(code, class uint32, msg string) abi.Result
	Log(level uint32, msg string, kv []byte) abi.Result
	Deadline() (int64, abi.Result)
	Check() abi.Result
}

// holder boxes a Host so it can sit in an atomic.Pointer: goroutines a
// handler started may still call the host while a test swaps it.
type holder struct{ h Host }

var current atomic.Pointer[holder]

// Install makes h the host of every host call until restore is called,
// which puts back the host that was installed before. The caller is
// responsible for not installing two hosts at once.
func Install(h Host) (restore func()) {
	prev := current.Swap(&holder{h})
	return func() { current.Store(prev) }
}

// Available reports whether a host is installed.
func Available() bool { return current.Load() != nil }

// host returns the installed host, or one that answers every call with
// ResultUnavailable: outside a step there is nothing to reach.
func host() Host {
	if p := current.Load(); p != nil {
		return p.h
	}
	return noHost{}
}

// InputLen returns the length of the step's input.
func InputLen() (uint32, abi.Result) { return host().InputLen() }

// InputRead copies the start of the input into buf and returns the count.
func InputRead(buf []byte) (uint32, abi.Result) { return host().InputRead(buf) }

// OutputWrite appends p to the step's output.
func OutputWrite(p []byte) abi.Result { return host().OutputWrite(p) }

// ErrorSet records the step's error.
func ErrorSet(code, class uint32, msg string) abi.Result { return host().ErrorSet(code, class, msg) }

// Log writes a log record; kv is encoded as package logkv does.
func Log(level uint32, msg string, kv []byte) abi.Result { return host().Log(level, msg, kv) }

// Deadline returns the nanoseconds left before the step's deadline, or -1.
func Deadline() (int64, abi.Result) { return host().Deadline() }

// Check reports whether the step is still running.
func Check() abi.Result { return host().Check() }

type noHost struct{}

func (noHost) InputLen() (uint32, abi.Result)             { return 0, abi.ResultUnavailable }
func (noHost) InputRead([]byte) (uint32, abi.Result)      { return 0, abi.ResultUnavailable }
func (noHost) OutputWrite([]byte) abi.Result              { return abi.ResultUnavailable }
func (noHost) ErrorSet(uint32, uint32, string) abi.Result { return abi.ResultUnavailable }
func (noHost) Log(uint32, string, []byte) abi.Result      { return abi.ResultUnavailable }
func (noHost) Deadline() (int64, abi.Result)              { return 0, abi.ResultUnavailable }
func (noHost) Check() abi.Result                          { return abi.ResultUnavailable }
