//go:build wasip1

package hostcall

import (
	"unsafe"

	"github.com/blockhost/blockhost/abi"
)

// The imports below are the host functions of docs/abi.md §4. Their names
// and parameter lists must match abi.Functions(); no test can call them
// without a host, so TestImports, a native test, parses this file and
// compares.

//go:wasmimport blockhost input_len
//go:noescape
func inputLen(lenPtr *uint32) uint32

//go:wasmimport blockhost input_read
//go:noescape
func inputRead(buf *byte, bufLen uint32, nPtr *uint32) uint32

//go:wasmimport blockhost output_write
//go:noescape
func outputWrite(ptr *byte, n uint32) uint32

//go:wasmimport blockhost error_set
//go:noescape
func errorSet(code, class uint32, msg *byte, msgLen uint32) uint32

//go:wasmimport blockhost log
//go:noescape
func log(level uint32, msg *byte, msgLen uint32, kv *byte, kvLen uint32) uint32

//go:wasmimport blockhost deadline
//go:noescape
func deadline(nsPtr *int64) uint32

//go:wasmimport blockhost check
func check() uint32

// Available reports whether host calls reach a host. Under wasip1 they
// always do.
func Available() bool { return true }

// InputLen returns the length of the step's input.
func InputLen() (uint32, abi.Result) {
	var n uint32
	r := inputLen(&n)
	return n, abi.Result(r)
}

// InputRead copies the start of the input into buf and returns the count.
func InputRead(buf []byte) (uint32, abi.Result) {
	var n uint32
	r := inputRead(unsafe.SliceData(buf), uint32(len(buf)), &n)
	return n, abi.Result(r)
}

// OutputWrite appends p to the step's output.
func OutputWrite(p []byte) abi.Result {
	return abi.Result(outputWrite(unsafe.SliceData(p), uint32(len(p))))
}

// ErrorSet records the step's error.
func ErrorSet(code, class uint32, msg string) abi.Result {
	return abi.Result(errorSet(code, class, unsafe.StringData(msg), uint32(len(msg))))
}

// Log writes a log record; kv is encoded as package logkv does.
func Log(level uint32, msg string, kv []byte) abi.Result {
	return abi.Result(log(level, unsafe.StringData(msg), uint32(len(msg)), unsafe.SliceData(kv), uint32(len(kv))))
}

// Deadline returns the nanoseconds left before the step's deadline, or -1.
func Deadline() (int64, abi.Result) {
	var ns int64
	r := deadline(&ns)
	return ns, abi.Result(r)
}

// Check reports whether the step is still running.
func Check() abi.Result { return abi.Result(check()) }
