package abi

import "strconv"

// Version is the ABI version this package describes.
const Version uint32 = 1

// ImportModule is the module name under which the host exports its
// functions to blocks.
const ImportModule = "blockhost"

// WASIModule is the import module of WASI preview1 functions.
const WASIModule = "wasi_snapshot_preview1"

// VersionExportPrefix starts the name of the export by which a block
// declares the ABI version it was built for: a block built for ABI v1
// exports a function named "blockhost_abi_v1". The host reads the export
// names at load time and never calls this function.
const VersionExportPrefix = "blockhost_abi_v"

// VersionExport returns the export name that declares ABI version v.
func VersionExport(v uint32) string {
	return VersionExportPrefix + strconv.FormatUint(uint64(v), 10)
}

// Guest exports. A block exports its linear memory as ExportMemory and one
// entry point: ExportStart (a WASI command, the form the Go toolchain
// builds), or ExportRun, optionally preceded by ExportInitialize (a
// reactor). ExportStart is preferred when both exist.
const (
	ExportMemory     = "memory"
	ExportStart      = "_start"
	ExportInitialize = "_initialize"
	ExportRun        = "blockhost_run"
	// ExportSnapshot is the marker by which a reactor declares that the
	// host may run its ExportInitialize once and start every step from
	// the memory and globals it left (docs/abi.md §2.1). Like the version
	// marker it is never called.
	ExportSnapshot = "blockhost_snapshot"
)

// Host functions in the ImportModule. Every one returns an i32 Result; see
// docs/abi.md for each signature.
const (
	// FuncInputLen(len_ptr i32) -> result writes the input's length (u32).
	FuncInputLen = "input_len"
	// FuncInputRead(buf_ptr i32, buf_len i32, n_ptr i32) -> result copies up
	// to buf_len bytes of input into buf and writes the count (u32) to n_ptr.
	FuncInputRead = "input_read"
	// FuncOutputWrite(ptr i32, len i32) -> result appends to the output.
	FuncOutputWrite = "output_write"
	// FuncErrorSet(code i32, class i32, msg_ptr i32, msg_len i32) -> result
	// records the block's failure.
	FuncErrorSet = "error_set"
	// FuncLog(level i32, msg_ptr i32, msg_len i32, kv_ptr i32, kv_len i32)
	// -> result writes a log record.
	FuncLog = "log"
	// FuncDeadline(ns_ptr i32) -> result writes the nanoseconds left before
	// the step's deadline (i64), or -1 when it has none.
	FuncDeadline = "deadline"
	// FuncCheck() -> result returns ResultOK while the step runs and
	// ResultTimeout or ResultCancelled once it is over.
	FuncCheck = "check"
)

// ValueType is a WebAssembly value type in a host function signature.
type ValueType byte

// The value types the ABI uses.
const (
	I32 ValueType = 0x7f
	I64 ValueType = 0x7e
)

// Signature is the type of a host function.
type Signature struct {
	Params  []ValueType
	Results []ValueType
}

// Function is one host function of the ABI: its name in ImportModule, the
// capability it belongs to and its type.
type Function struct {
	Name string
	// Capability names the capability the function belongs to ("http",
	// "fs"), or is empty for the core functions every block may call.
	Capability string
	Signature  Signature
}

// The table of ABI v1's host functions. It is fixed at compile time and
// never handed out: LookupFunction and Functions return copies, so nothing
// can add, remove or retype a function at run time.
var functions = [...]Function{
	{FuncInputLen, "", sig(I32)},
	{FuncInputRead, "", sig(I32, I32, I32)},
	{FuncOutputWrite, "", sig(I32, I32)},
	{FuncErrorSet, "", sig(I32, I32, I32, I32)},
	{FuncLog, "", sig(I32, I32, I32, I32, I32)},
	{FuncDeadline, "", sig(I32)},
	{FuncCheck, "", sig()},

	{FuncHTTPRequest, CapabilityHTTP, sig(I32, I32, I32, I32, I32)},
	{FuncHTTPResponseHead, CapabilityHTTP, sig(I32, I32, I32, I32)},
	{FuncHTTPBodyRead, CapabilityHTTP, sig(I32, I32, I32, I32)},
	{FuncHTTPClose, CapabilityHTTP, sig(I32)},
	{FuncHTTPLastError, CapabilityHTTP, sig(I32, I32, I32)},

	{FuncFSRead, CapabilityFS, sig(I32, I32, I64, I32, I32, I32)},
	{FuncFSWrite, CapabilityFS, sig(I32, I32, I32, I32, I32)},
	{FuncFSAppend, CapabilityFS, sig(I32, I32, I32, I32)},
	{FuncFSStat, CapabilityFS, sig(I32, I32, I32)},
	{FuncFSList, CapabilityFS, sig(I32, I32, I32, I32, I32)},
	{FuncFSRemove, CapabilityFS, sig(I32, I32)},
	{FuncFSMkdir, CapabilityFS, sig(I32, I32)},
	{FuncFSRename, CapabilityFS, sig(I32, I32, I32, I32)},
	{FuncFSLastError, CapabilityFS, sig(I32, I32, I32)},

	{FuncSQLQuery, CapabilitySQL, sig(I32, I32, I32)},
	{FuncSQLResult, CapabilitySQL, sig(I32, I32, I32)},
	{FuncSQLExec, CapabilitySQL, sig(I32, I32, I32)},
	{FuncSQLLastError, CapabilitySQL, sig(I32, I32, I32)},
}

// Capability names, as Function.Capability gives them.
const (
	CapabilityHTTP = "http"
	CapabilityFS   = "fs"
	CapabilitySQL  = "sql"
)

// sig is the type of a host function with the given parameters: every one
// returns an i32 Result.
func sig(params ...ValueType) Signature {
	return Signature{Params: params, Results: []ValueType{I32}}
}

// LookupFunction returns the type of the host function name, and whether
// ABI v1 has it.
func LookupFunction(name string) (Signature, bool) {
	for _, f := range functions {
		if f.Name == name {
			return f.Signature.clone(), true
		}
	}
	return Signature{}, false
}

// CapabilityOf returns the capability the host function name belongs to
// ("" for a core function every block may call), and whether ABI v1 has
// it.
func CapabilityOf(name string) (string, bool) {
	for _, f := range functions {
		if f.Name == name {
			return f.Capability, true
		}
	}
	return "", false
}

// Functions returns every host function of ABI v1, core functions first,
// in a new slice the caller may keep.
func Functions() []Function {
	out := functions[:]
	out = append([]Function(nil), out...)
	for i := range out {
		out[i].Signature = out[i].Signature.clone()
	}
	return out
}

func (s Signature) clone() Signature {
	return Signature{Params: append([]ValueType(nil), s.Params...), Results: append([]ValueType(nil), s.Results...)}
}

// Log levels for FuncLog.
const (
	LevelTrace uint32 = 1
	LevelDebug uint32 = 2
	LevelInfo  uint32 = 3
	LevelWarn  uint32 = 4
	LevelError uint32 = 5
)
